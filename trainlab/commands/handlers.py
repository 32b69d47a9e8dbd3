"""What each `trainlab` subcommand does with its parsed arguments (``cmd_<name>``); the parser and the entry
point are ``cli``. Each handler imports what it needs when it runs, so `trainlab list` or `--help` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import did_you_mean


def cmd_list(args: argparse.Namespace) -> int:
    from ..components import import_modules
    from ..registries import ALL_REGISTRIES
    from ..registry_index import build_listing, builtin_listing

    names = [args.registry.lower()] if args.registry else list(ALL_REGISTRIES)
    # Not `get(name) or get(name + "s")`: a registry's truth value is its length, which imports its modules.
    registries = [ALL_REGISTRIES.get(name, ALL_REGISTRIES.get(name + "s")) for name in names]
    for name, registry in zip(names, registries):
        if registry is None:
            from ..errors import RegistryError, did_you_mean

            raise RegistryError(
                f"no registry '{name}'{did_you_mean(name, ALL_REGISTRIES)}; registries: {', '.join(ALL_REGISTRIES)}"
            )
    if args.imports:  # the user's modules register too: list by importing everything
        import_modules(args.imports)
        listing = build_listing(registry.name for registry in registries)
    else:  # built-ins only: the saved listing spares importing torch and transformers (~4 s)
        listing = builtin_listing()
    for registry in registries:
        entries = listing[registry.name]
        print(f"{registry.name} ({len(entries)})")
        for entry, module in entries:
            print(f"  {entry:<36} {module}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from ..validation import prepare_config

    sys.stdout.write(prepare_config(args.config, _overrides(args), args.imports).dump())
    return 0


def cmd_estimate(args: argparse.Namespace) -> int:
    from ..validation import prepare_config
    from .estimate import estimate_table

    cfg = prepare_config(args.config, _overrides(args), args.imports)
    print(estimate_table(cfg, args.nproc, args.nnodes, args.strategy))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..validation import prepare_config
    from .estimate import check_memory
    from .launch import LaunchOptions, launch

    overrides = _overrides(args)
    if args.resume is not None:
        _check_resume_target(args.resume)
        overrides += ["TRAINER.RESUME", args.resume or "auto"]
    options = LaunchOptions(
        args.nproc, args.gpus, args.nnodes, args.node_rank, args.master_addr, args.master_port, args.rdzv_endpoint,
        args.rdzv_id, args.max_restarts,
    ).resolve()  # launch options first: they are checked in a moment, the config takes seconds
    cfg = prepare_config(args.config, overrides, args.imports, training=True)  # user errors surface here, once
    check_memory(cfg, options.nproc, options.nnodes, args.force)  # a run that cannot fit stops here, unless --force
    module_args = [args.config, *overrides, *[arg for module in args.imports for arg in ("--import", module)]]
    module_args += ["--debug"] if args.debug else []
    if not options.distributed:  # this process trains: the config is loaded and checked once
        from ..components import run_training
        from .train import run_guarded

        return run_guarded(lambda: run_training(cfg), args.debug)
    return launch(options, module_args)


def _check_resume_target(target: str) -> None:
    """`--resume` takes "auto" or an existing path; anything else was meant as something else."""
    if target in ("", "auto") or Path(target).exists():
        return
    from ..errors import ConfigError

    raise ConfigError(
        f"--resume {target}: no such checkpoint or run directory — give an existing path, "
        "'auto' (the latest run), or write --resume=auto when the next word is not its value"
    )


def _check_output(output: str | None, overwrite: bool) -> None:
    """An existing --output file is replaced only with --overwrite: it may be something the user keeps."""
    if output is not None and Path(output).exists() and not overwrite:
        from ..errors import ConfigError

        raise ConfigError(f"--output {output} already exists; choose another file, or pass --overwrite to replace it")


def cmd_eval(args: argparse.Namespace) -> int:
    from ..validation import prepare_config
    from .evaluate import check_evaluation, evaluate_checkpoint, report_metrics, worker_arguments
    from .launch import LaunchOptions, launch

    options = LaunchOptions(args.nproc).resolve()
    _check_output(args.output, args.overwrite)
    if args.report is not None:
        from ..reports import check_report_dir

        check_report_dir(args.report, args.overwrite)
    cfg = prepare_config(args.config, _overrides(args), args.imports)
    if options.distributed:  # the user's mistakes surface here, once, before any process starts
        check_evaluation(cfg, args.checkpoint, args.split)
        return launch(options, worker_arguments(args), module="trainlab.commands.evaluate", task="evaluation")
    report_metrics(evaluate_checkpoint(cfg, args.checkpoint, args.split, args.report), args.output)  # under torchrun: rank 0
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..validation import prepare_config
    from .predict import predict_csv

    rows = predict_csv(prepare_config(args.config, _overrides(args), args.imports), args.checkpoint, args.input, args.output,
                       overwrite=args.overwrite)
    print(f"wrote {rows} prediction(s) to {args.output}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate_answers, read_prompts, shown, write_generations

    _check_output(args.output, args.overwrite)  # first: nothing loads in vain
    prompts = read_prompts(args.prompt, args.input)
    if args.imports:  # e.g. a module that registers its own architecture with transformers' Auto classes
        from ..components import import_modules

        import_modules(args.imports)
    answers = generate_answers(args.run_dir, prompts, args.max_new_tokens, adapter=args.adapter)
    for prompt, answer in zip(prompts, answers):
        print(f"{shown(prompt)} → {answer}")
    if args.output is not None:
        write_generations(args.output, prompts, answers)
        print(f"wrote {len(answers)} generation(s) to {args.output}")
    return 0


def cmd_preprocess(args: argparse.Namespace) -> int:
    from ..preprocess.stackoverflow import main as stackoverflow_main

    tasks = {"stackoverflow": stackoverflow_main}
    if not args.args or args.args[0] not in tasks:
        from ..errors import ConfigError

        given = f" ('{args.args[0]}' is not one{did_you_mean(args.args[0], tasks)})" if args.args and not args.args[0].startswith("-") else ""
        raise ConfigError(
            f"name what to preprocess{given}: trainlab preprocess {{{', '.join(tasks)}}} --input CSV --output DIR"
        )
    task_args = args.args[1:]
    return tasks[args.args[0]](task_args + ["--debug"] if args.debug and "--debug" not in task_args else task_args)


def cmd_merge_lora(args: argparse.Namespace) -> int:
    from ..peft.merge import merge_lora_checkpoint

    out = merge_lora_checkpoint(args.checkpoint, args.out_dir, overwrite=args.overwrite)
    print(f"merged model written to {out}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from . import runs

    return runs.run(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from . import plot

    return plot.run(args)


def _overrides(args: argparse.Namespace) -> list[str]:
    return list(args.overrides)
