"""Phrase tables for the synthetic Stack Overflow sample: topics, code snippets, titles and sentences.

Templates use ``{name}`` (language), ``{thing}``, ``{error}``, ``{action}``, ``{version}``,
``{category}``, ``{other}`` (another language), ``{site}`` and ``{line}``; code lines use ``{a}``,
``{b}``, ``{c}`` for identifiers (``{{``/``}}`` are literal braces).
"""

# fmt: off
TOPICS = [
    {"name": "Python", "tags": ["python", "django", "list", "pandas", "flask", "regex"], "lang": "python",
     "things": ["list comprehension", "QuerySet", "decorator", "generator", "DataFrame", "dict"],
     "errors": ["TypeError: 'NoneType' object is not subscriptable", "KeyError: 'user_id'",
                "ImportError: No module named settings",
                "UnicodeDecodeError: 'ascii' codec can't decode byte 0xe2"]},
    {"name": "JavaScript", "tags": ["javascript", "jquery", "ajax", "html", "css", "json"], "lang": "js",
     "things": ["click handler", "AJAX callback", "closure", "JSON response", "select box",
                "setTimeout loop"],
     "errors": ["Uncaught TypeError: Cannot read property 'length' of undefined",
                "Uncaught ReferenceError: $ is not defined", "SyntaxError: Unexpected token <"]},
    {"name": "Java", "tags": ["java", "android", "swing", "hibernate", "spring", "eclipse"], "lang": "java",
     "things": ["ArrayList", "ListView adapter", "HashMap", "JTable", "AsyncTask", "servlet"],
     "errors": ["java.lang.NullPointerException at MainActivity.onCreate(MainActivity.java:42)",
                "java.lang.ClassCastException: java.lang.String cannot be cast to java.lang.Integer",
                "org.hibernate.LazyInitializationException: could not initialize proxy - no Session"]},
    {"name": "C#", "tags": ["c#", ".net", "asp.net", "wpf", "linq", "winforms"], "lang": "csharp",
     "things": ["LINQ query", "DataGridView", "async method", "WPF binding", "Entity Framework context"],
     "errors": ["System.NullReferenceException: Object reference not set to an instance of an object",
                "InvalidOperationException: Sequence contains no elements",
                "The calling thread cannot access this object because a different thread owns it"]},
    {"name": "PHP", "tags": ["php", "mysql", "sql", "arrays", "wordpress", "session"], "lang": "php",
     "things": ["mysql_query result", "session variable", "foreach loop", "PDO statement", "upload form"],
     "errors": ["Warning: mysql_fetch_array() expects parameter 1 to be resource, boolean given",
                "Fatal error: Call to a member function execute() on a non-object",
                "Parse error: syntax error, unexpected T_VARIABLE"]},
    {"name": "C++", "tags": ["c++", "c", "pointers", "templates", "stl", "linux"], "lang": "cpp",
     "things": ["std::vector", "pointer to member", "template specialization", "copy constructor",
                "std::map"],
     "errors": ["Segmentation fault (core dumped)", "error: no matching function for call to 'sort'",
                "undefined reference to `vtable for Shape'"]},
    {"name": "Objective-C", "tags": ["objective-c", "ios", "iphone", "xcode", "cocoa-touch"], "lang": "objc",
     "things": ["UITableView", "NSDictionary", "delegate method", "UINavigationController",
                "NSURLConnection"],
     "errors": ["Terminating app due to uncaught exception 'NSRangeException'",
                "EXC_BAD_ACCESS in objc_msgSend", "unrecognized selector sent to instance 0x6a3b2c0"]},
]
GENERIC_TAGS = ["beginner", "career-development", "books", "hardware", "web", "programming-languages"]

# One coherent snippet per language; code blocks are windows of it with fresh identifiers.
CODE = {
    "python": [
        "import {c}", "", "def {a}(self, {b}):", "    {c} = []", "    for item in {b}:",
        "        if item.{a} is None:", "            raise ValueError('{c}')", "        {c}.append(item)",
        "    return sorted({c}, key=lambda x: x.{b})", "", "print({a}({b}_list))"],
    "js": [
        "$(document).ready(function() {{", "  $('#{a}').click(function() {{", "    var {b} = $(this).val();",
        "    $.ajax({{", "      url: '/{c}/' + {b},", "      success: function(data) {{",
        "        $('#{c}').html(data.{a});", "      }}", "    }});", "  }});", "}});"],
    "java": [
        "public List<String> {a}(List<String> {b}) {{", "    List<String> {c} = new ArrayList<String>();",
        "    for (int i = 0; i < {b}.size(); i++) {{", "        if ({b}.get(i) != null) {{",
        "            {c}.add({b}.get(i).trim());", "        }}", "    }}",
        "    Log.d(TAG, \"size \" + {c}.size());", "    return {c};", "}}"],
    "csharp": [
        "public async Task<List<{a}>> Get{a}Async(int {b})", "{{", "    using (var db = new {c}Context())",
        "    {{", "        var {c} = await db.{a}.Where(x => x.Id == {b}).ToListAsync();",
        "        foreach (var item in {c})", "            Console.WriteLine(item.{b});",
        "        return {c};", "    }}", "}}"],
    "php": [
        "<?php", "session_start();", "$id = $_GET['{b}'];",
        "$result = mysql_query(\"SELECT * FROM {a} WHERE id = $id\");",
        "while ($row = mysql_fetch_array($result)) {{", "    echo '<td>' . $row['{c}'] . '</td>';", "}}",
        "$_SESSION['{b}'] = ${c};", "?>"],
    "cpp": [
        "#include <vector>", "#include <iostream>", "", "int {a}(const std::vector<int>& {b}) {{",
        "    int {c} = 0;", "    for (auto it = {b}.begin(); it != {b}.end(); ++it)", "        {c} += *it;",
        "    std::cout << {c} << std::endl;", "    return {c};", "}}"],
    "objc": [
        "- (UITableViewCell *)tableView:(UITableView *)table cellForRowAtIndexPath:(NSIndexPath *)path {{",
        "    UITableViewCell *cell = [table dequeueReusableCellWithIdentifier:@\"{a}\"];",
        "    NSDictionary *{b} = [self.{c} objectAtIndex:path.row];",
        "    cell.textLabel.text = [{b} objectForKey:@\"{a}\"];", "    NSLog(@\"%@\", {b});",
        "    return cell;", "}}"],
}
NAMES = ["user", "items", "data", "result", "order", "row", "config", "node", "buffer", "parse", "cart"]

OPEN_TITLES = [
    "How do I {action} with {thing}?", "{error} when I {action}",
    "Why does my {thing} return null after saving?",
    "{thing} is not updated after the page reloads", "Unable to {action} in {name} {version}",
    "Best way to {action} using a {thing}?", "Getting \"{error}\"",
    "{name}: {thing} works locally but not on the server",
    "Strange behaviour of {thing} when the list is empty", "How can I {action} without a loop in {name}?",
]
CLOSED_TITLES = {
    "not constructive": [
        "What is the best {category} for {name}?", "{name} or {other}: which one is better?",
        "Which {category} do you recommend for {name} development?", "What's your favorite {category}?",
        "Is {name} better than {other} for a big project?", "Best {category} for a beginner in {name}?",
        "What do you think about {name} in 2012?"],
    "not a real question": [
        "How to make a website like {site}?", "I need help with my {name} project",
        "Where do I start with {name}?", "{name} help please", "need {name} code for a {site} clone urgent",
        "How to learn {name} fast?", "what is wrong with {name}??", "How do I make a game?"],
    "off topic": [
        "Which laptop should I buy for {name} development?", "How much should I charge for a {name} website?",
        "Should I quit my job to learn {name}?", "Is a computer science degree worth it?",
        "Where can I download {name} books for free?", "Is it legal to copy the design of {site}?"],
    "too localized": [
        "Why is {site}.com down today?", "Error on line {line} of my {name} homework",
        "Fix my {name} code for tomorrow's contest",
        "{name} {version} beta breaks my {thing} since this morning",
        "My {thing} code does not work, line {line}"],
}
ACTIONS = [
    "sort the results by date", "parse a date string", "read a file line by line",
    "call a method asynchronously", "pass data between two views", "escape user input", "update a row",
    "remove duplicates", "bind a list to the view", "serialize this object to JSON", "free the memory",
]
CATEGORIES = ["IDE", "book", "framework", "text editor", "ORM", "hosting company", "tutorial", "library"]
SITES = ["facebook", "twitter", "youtube", "ebay", "stackoverflow", "groupon", "pinterest"]
OTHERS = ["Ruby", "Go", "Java", "PHP", "Node.js", "Scala", "Perl"]

OPEN_INTROS = [
    "I'm trying to {action} in {name} {version} with a {thing}.", "I have a {thing} and I want to {action}.",
    "In my {name} application I need to {action}, but the {thing} gets in the way.",
    "I wrote a small function to {action}, and it behaves differently than I expect.",
    "My {thing} stops working as soon as I {action}.",
    "Consider the following {name} code that should {action}.",
]
OPEN_CONTEXT = [
    "The {thing} comes from a form that the user submits, and it works for the first request.",
    "This only happens in production; on my development machine everything is fine.",
    "I read the documentation for {thing} twice and I think I'm following the example exactly.",
    "I'm using {name} {version} on Windows 7 with the default settings.",
    "The strange thing is that the same code worked before I upgraded to {version}.",
    "It fails only when the list has more than 1000 elements.",
    "I've already tried clearing the cache and restarting the server, but the result is the same.",
    "Stepping through it in the debugger shows that {thing} is filled correctly just before the call.",
    "I also searched Stack Overflow and found a similar question, but the accepted answer does not apply.",
    ("I know I could rewrite the whole thing, but this is part of a larger code base that other people "
    "maintain, so I'd prefer a fix that keeps the current structure and does not change the public methods."),
    "Performance matters here because this runs for every request, and the table has about two million rows.",
]
UPDATES = [
    "**Update:** following the comments I added logging, and the {thing} is empty only on the second call.",
    "**Edit:** I tried the suggestion to {action} first, but now I get a different error:",
    "EDIT 2: it also happens with {name} {version}, so it is not a version problem.",
]
OPEN_ENDINGS = [
    "What am I doing wrong?", "Is there a cleaner way to do this?", "What is the best way to fix this?",
    "Any idea why this happens?", "How can I make it work for every row?", "Thanks in advance!",
]
CLOSED_BODIES = {
    "not constructive": [
        "I'm starting a new project in {name} and I have to choose between a few {category}s.",
        "What are your experiences? Which one would you pick and why?",
        "I'd like to hear opinions from people who used them in real projects.",
        "Please share your favorite and tell me the pros and cons.",
        "I'm trying to decide quickly because the team wants an answer this week.",
        "I know this is subjective, but I think a list of good options would help many beginners.",
        "Some people say {name} is dead and {other} is the future. What do you think?",
        ("So far I have looked at three {category}s: one is free but slow, one is fast but expensive, and "
        "the third one has a nice community but almost no documentation, so I really cannot decide.")],
    "not a real question": [
        "i want to make a site like {site}. how to do it? please give me the code.",
        "I am new in {name}. please help me, its urgent!!!",
        "I have a project about {name} and I don't know anything. Can someone explain everything?",
        "how do i do this", "Please tell me everything I need to know about {name}.",
        "i tried but it dont work. somebody help",
        ("I'm trying to build something like {site} for my school, with users, messages, photos, a chat "
        "and payments, and I have two weeks. what language should i use and can you send me an example")],
    "off topic": [
        "I'm a student and I want to buy a computer for programming in {name}.",
        "My budget is around 800 dollars. Do I need an SSD and 8GB of RAM?",
        "A client asked me for a website with a shopping cart and I have no idea what price to ask.",
        "I have been working as a tester for three years and I think about changing my career.",
        "Is it worth it, or should I stay where I am?",
        ("I'm trying to figure out whether employers care more about certificates or about a portfolio "
        "of small projects, because I only have time in the evenings and want to spend it well.")],
    "too localized": [
        "This is my homework for tomorrow and line {line} gives an error. Please fix it.",
        "Since this morning {site}.com shows a blank page for me. Is it only me?",
        "Our teacher gave us this code and it has to print the exact output below.",
        "It was working yesterday on my friend's computer but not on mine."],
}
# fmt: on
