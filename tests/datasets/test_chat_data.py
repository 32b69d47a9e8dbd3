"""Instruction-tuning data for causal LMs: chat conversations, prompt/response and text rows, as a user feeds them."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers

from trainlab.datasets.causal_lm import CausalLMDataset
from trainlab.datasets.prompts import encode_prompt
from trainlab.errors import ConfigError, DataError

CONVERSATION = [
    {"role": "system", "content": "you answer briefly"},
    {"role": "user", "content": "what colour is the sky"},
    {"role": "assistant", "content": "blue"},
    {"role": "user", "content": "and grass at noon"},
    {"role": "assistant", "content": "green, mostly"},
]
PAIRS = [("what colour is the sky?", "the sky is blue"), ("name a fruit", "an apple"),
         ("count to five please", "one two three four five"), ("say hi", "hi")]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    return transformers.AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture
def trainlab_log(caplog):
    """Records of the ``trainlab`` logger, which may not propagate once a run set it up."""
    logger = logging.getLogger("trainlab")
    logger.addHandler(caplog.handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.setLevel(level)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def pair_rows(pairs=PAIRS) -> list[dict]:
    return [{"prompt": prompt, "response": f" {response}"} for prompt, response in pairs]


def test_only_assistant_turns_and_their_end_of_turn_are_learnt(tokenizer, tmp_path):
    dataset = CausalLMDataset(write_jsonl(tmp_path / "chat.jsonl", [{"messages": CONVERSATION}]), tokenizer=tokenizer)
    item = dataset[0]

    def piece(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    # The fixture's template: BOS, then "<|role|>\n" + content + EOS + "\n" per message.
    ids, labels = [tokenizer.bos_token_id], [-100]
    for message in CONVERSATION:
        header, body = piece(f"<|{message['role']}|>\n"), piece(message["content"]) + [tokenizer.eos_token_id]
        ids += header + body
        labels += [-100] * len(header) + (body if message["role"] == "assistant" else [-100] * len(body))
    assert dataset.format == "messages"
    assert item["input_ids"] == ids
    assert item["labels"] == labels


def test_bos_and_eos_come_from_the_tokenizer_or_the_template(tokenizer, tmp_path):
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pairs = CausalLMDataset(write_jsonl(tmp_path / "pairs.jsonl", pair_rows()), tokenizer=tokenizer)
    item = pairs[0]
    prompt_ids = encode_prompt(tokenizer, PAIRS[0][0])
    assert pairs.format == "prompt_response" and item["input_ids"][0] == bos and item["input_ids"][-1] == eos
    assert item["input_ids"][:len(prompt_ids)] == prompt_ids  # what generation will feed the model
    assert item["labels"] == [-100] * len(prompt_ids) + item["input_ids"][len(prompt_ids):]

    text = CausalLMDataset(write_jsonl(tmp_path / "text.jsonl", [{"text": "the sky is blue"}]), tokenizer=tokenizer)
    assert text.format == "text" and text[0]["input_ids"][0] == bos and text[0]["input_ids"][-1] == eos
    assert text[0]["labels"] == text[0]["input_ids"]

    chat = CausalLMDataset(write_jsonl(tmp_path / "chat.jsonl", [{"messages": CONVERSATION}]), tokenizer=tokenizer)
    assert chat[0]["input_ids"][0] == bos and chat[0]["input_ids"].count(bos) == 1


def test_existing_prompt_field_configs_still_read_prompt_response_rows(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "pairs.jsonl", pair_rows())
    auto = CausalLMDataset(path, tokenizer=tokenizer)
    explicit = CausalLMDataset(path, tokenizer=tokenizer, prompt_field="prompt", format="prompt_response")
    assert explicit.format == "prompt_response" and explicit[0] == auto[0]
    with pytest.raises(DataError, match=r"no column 'text' for text rows .*TEXT_FIELD"):
        CausalLMDataset(path, tokenizer=tokenizer, format="text")
    assert CausalLMDataset.config_errors(root=str(path), format="chat") == [
        "FORMAT must be one of auto, prompt_response, text, messages, got 'chat'"]


def per_example_nll(model, batch: dict[str, torch.Tensor], segments: torch.Tensor) -> dict[tuple[int, int], float]:
    """Summed next-token NLL per (row, segment), each label counted in the segment it belongs to."""
    logits = model(**{key: value for key, value in batch.items() if key != "labels"}, use_cache=False).logits
    labels = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels, ignore_index=-100, reduction="none")
    sums: dict[tuple[int, int], float] = {}
    for row, segment in (labels != -100).nonzero().tolist():
        key = (row, int(segments[row, segment + 1]))
        sums[key] = sums.get(key, 0.0) + float(nll[row, segment])
    return sums


def test_packed_batches_give_each_example_the_loss_it_has_alone(tiny_llama, tokenizer, tmp_path):
    rows = [{"messages": CONVERSATION[:3]}, {"messages": CONVERSATION}, {"messages": CONVERSATION[1:3]}]
    rows += [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in PAIRS]
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    plain = CausalLMDataset(path, tokenizer=tokenizer, max_length=64)
    packed = CausalLMDataset(path, tokenizer=tokenizer, max_length=64, packing=True)
    assert len(packed) < len(plain) and max(packed.lengths) <= 64
    lengths = packed.lengths
    assert packed.padding_fraction(1) == 0.0
    assert packed.padding_fraction(len(packed)) == pytest.approx(1 - sum(lengths) / (max(lengths) * len(lengths)))

    batch = packed.collate_fn([packed[index] for index in range(len(packed))])
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention_mask: masks come from positions
    starts = batch["position_ids"] == 0
    assert (batch["labels"][starts] == -100).all()  # no example predicts across a boundary
    sizes = [len(packed[index]["input_ids"]) for index in range(len(packed))]
    positions = [p for row, size in enumerate(sizes) for p in batch["position_ids"][row, :size].tolist()]
    assert positions == [p for i in range(len(plain)) for p in range(len(plain[i]["input_ids"]))]

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama).to(torch.float64).eval()
    with torch.no_grad():
        packed_nll = per_example_nll(model, batch, starts.cumsum(dim=1))
        plain_batch = plain.collate_fn([plain[index] for index in range(len(plain))])
        plain_nll = per_example_nll(model, plain_batch, torch.ones_like(plain_batch["input_ids"]))
    assert len(packed_nll) == len(plain_nll) == len(rows)
    in_order = [packed_nll[key] for key in sorted(packed_nll)]  # (row, segment) order is example order
    assert in_order == pytest.approx([plain_nll[key] for key in sorted(plain_nll)], abs=1e-5)


def test_truncation_cuts_or_drops_long_rows_and_drops_rows_with_nothing_to_learn(tokenizer, tmp_path, trainlab_log):
    long_prompt = " ".join(["word"] * 30)
    rows = pair_rows() + [{"prompt": "short", "response": " " + " ".join(["answer"] * 30)},
                          {"prompt": long_prompt, "response": " yes"}]
    path = write_jsonl(tmp_path / "validation.jsonl", rows)
    right = CausalLMDataset(path, tokenizer=tokenizer, max_length=16)
    assert len(right) == 5 and max(right.lengths) == 16
    assert "validation.jsonl: 6 prompt_response rows, 1 truncated to 16 tokens, 1 dropped (no response tokens left)" \
        in trainlab_log.text
    drop = CausalLMDataset(path, tokenizer=tokenizer, max_length=16, truncation="drop")
    assert len(drop) == 4
    assert "6 prompt_response rows, 2 dropped (longer than 16 tokens)" in trainlab_log.text
    with pytest.raises(DataError, match="no rows left"):
        CausalLMDataset(write_jsonl(tmp_path / "long.jsonl", rows[-1:]), tokenizer=tokenizer, max_length=16)


@pytest.mark.parametrize("row, fragment", [
    ({"messages": "hello"}, "'messages' is a str ('hello'), expected a list"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "hi"}]}, "message 1 has no content"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, "message 1 has role 'bot'; expected one of system"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]},
     "message 2 (assistant) has empty content"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "has no assistant message"),
    ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "hi"}]},
     "content of type int (3), expected a string"),
    ({"prompt": "q"}, "'response' is missing"),
    ({"prompt": "q", "response": 5}, "'response' is a int (5), expected a string"),
    ({"text": ["a"]}, "'text' is a list (['a']), expected a string"),
    ('{"text": oops}', "line 4 is not valid JSON"),
])
def test_a_malformed_row_is_named_by_file_and_line(tokenizer, tmp_path, row, fragment):
    good = ({"messages": CONVERSATION} if "messages" in str(row) else
            {"prompt": "q", "response": "a"} if "prompt" in str(row) else {"text": "fine"})
    path = write_jsonl(tmp_path / "train.jsonl", [good, good, "", row])  # a blank line: the bad row is line 4
    with pytest.raises(DataError) as error:
        CausalLMDataset(tmp_path, "train", tokenizer=tokenizer)
    assert f"{path} line 4" in str(error.value) and fragment in str(error.value)
    assert "\n" not in str(error.value)
    # the same line from the config checks, which read rows without a tokenizer: before any model loads
    assert CausalLMDataset.config_errors(root=tmp_path, split="train") == [str(error.value)]


def test_bad_rows_after_the_first_are_counted(tokenizer, tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"text": "ok"}, {"text": 1}, {"text": None}, {"text": 2}])
    with pytest.raises(DataError, match=r"line 2: 'text' is a int \(1\), expected a string \(2 more bad rows after"):
        CausalLMDataset(path, tokenizer=tokenizer)


def test_a_saved_dataset_folder_is_a_source(tokenizer, tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [{"messages": CONVERSATION}, {"messages": CONVERSATION[1:3]}]
    from_jsonl = CausalLMDataset(write_jsonl(tmp_path / "chat.jsonl", rows), tokenizer=tokenizer)
    DatasetDict({"validation": Dataset.from_list(rows)}).save_to_disk(tmp_path / "dict")
    Dataset.from_list(rows).save_to_disk(tmp_path / "single")
    for root in ("dict", "single"):
        saved = CausalLMDataset(tmp_path / root, "validation", tokenizer=tokenizer)
        assert [saved[i] for i in range(2)] == [from_jsonl[i] for i in range(2)]
    with pytest.raises(DataError, match="no split 'train'"):
        CausalLMDataset(tmp_path / "dict", "train", tokenizer=tokenizer)
    bad = [{"messages": CONVERSATION}, {"messages": [{"role": "user", "content": "hi"}]}]
    Dataset.from_list(bad).save_to_disk(tmp_path / "bad")
    with pytest.raises(DataError, match=r"bad row index 1: 'messages' has no assistant message"):
        CausalLMDataset(tmp_path / "bad", tokenizer=tokenizer)


def test_a_named_template_serves_a_tokenizer_without_one(tokenizer, tmp_path):
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": CONVERSATION}])
    with pytest.raises(ConfigError, match="no chat template"):
        CausalLMDataset(path, tokenizer=bare)
    chat = CausalLMDataset(path, tokenizer=bare, chat_template="chatml")
    item = chat[0]
    learnt = [token for token in item["labels"] if token != -100]
    end = bare("<|im_end|>\n", add_special_tokens=False)["input_ids"]
    expected = [token for m in CONVERSATION if m["role"] == "assistant"
                for token in bare(m["content"], add_special_tokens=False)["input_ids"] + end]
    assert chat.chat_template.startswith("{% for message") and learnt == expected
    assert bare.bos_token_id not in item["input_ids"]  # chatml writes no BOS
    with pytest.raises(ConfigError, match="renders the first 2 message"):
        CausalLMDataset(path, tokenizer=tokenizer, chat_template="{% for m in messages %}{{ m.content }}"
                                                                  "{% if loop.last %}!{% endif %}{% endfor %}")


def test_generation_examples_hold_prompt_ids_and_references(tokenizer, tmp_path):
    chat = CausalLMDataset(write_jsonl(tmp_path / "chat.jsonl", [{"messages": CONVERSATION}] * 3), tokenizer=tokenizer,
                           packing=True)
    [example] = chat.generation_examples(1)
    assert example["prompt"] == CONVERSATION[:4] and example["reference"] == "green, mostly"
    assert example["prompt_ids"] == encode_prompt(tokenizer, CONVERSATION[:4], chat.chat_template)
    assert chat[0]["input_ids"][:len(example["prompt_ids"])] == example["prompt_ids"]

    pairs = CausalLMDataset(write_jsonl(tmp_path / "pairs.jsonl", pair_rows()), tokenizer=tokenizer)
    examples = pairs.generation_examples(10)
    assert len(examples) == 4 and examples[1]["prompt"] == "name a fruit" and examples[1]["reference"] == " an apple"
    assert examples[1]["prompt_ids"] == encode_prompt(tokenizer, "name a fruit")

    text = CausalLMDataset(write_jsonl(tmp_path / "text.jsonl", [{"text": "one two three four"}]), tokenizer=tokenizer)
    [example] = text.generation_examples(1)
    assert (example["prompt"], example["reference"]) == ("one two", "three four")
