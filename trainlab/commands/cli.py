"""The `trainlab` command: list, config, estimate, train, eval, predict, generate, preprocess, merge-lora, runs, plot.

This module parses the command line (one-line errors that suggest the closest option) and dispatches to the
handlers in ``handlers.py``.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from collections.abc import Callable

from ..errors import TrainLabError, did_you_mean
from .handlers import (
    cmd_config,
    cmd_estimate,
    cmd_eval,
    cmd_generate,
    cmd_list,
    cmd_merge_lora,
    cmd_plot,
    cmd_predict,
    cmd_preprocess,
    cmd_runs,
    cmd_train,
)

EXIT_USER_ERROR = 2
CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Za-z0-9_]+)+(=.*)?$")  # TRAINER.MAX_STEPS or TRAINER.MAX_STEPS=1


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`trainlab: error: ...`, exit 2) that suggest the closest option."""

    def error(self, message: str) -> None:  # type: ignore[override]
        options = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
        hint = ""
        if message.startswith("unrecognized arguments:"):
            unknown = next((w for w in message.split(":", 1)[1].split() if w.startswith("-")), None)
            if unknown:
                hint = did_you_mean(unknown.split("=", 1)[0], options)
        elif "invalid int value" in message:
            hint = " — give a whole number"
        message = message.replace("config, overrides", "config")  # the overrides are optional (nargs="*")
        command = self.prog.removeprefix("trainlab").strip()
        where = f" (see trainlab {command + ' ' if command else ''}--help)"
        print(f"trainlab: error: {' '.join(message.split())}{hint}{where}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def build_parser() -> argparse.ArgumentParser:
    from ..estimate import ESTIMATED_STRATEGIES

    parser = _Parser(
        prog="trainlab", description="Registry-driven training for Hugging Face models."
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of user errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str, config: bool = True,
        imports: bool = True,
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(func=func, imports=[])
        cmd.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
        if imports:  # commands that build registered components
            cmd.add_argument(
                "--import",
                dest="imports",
                action="append",
                default=[],
                metavar="MODULE",
                help="import a module that registers components (repeatable)",
            )
        if config:
            cmd.add_argument("config", help="YAML config file")
            cmd.add_argument("overrides", nargs="*", help="overrides: KEY VALUE pairs or KEY=VALUE items")
        return cmd

    listing = add("list", cmd_list, "list every registry and its names", config=False)
    listing.add_argument("registry", nargs="?", help="only this registry (models, datasets, trainers, ...)")
    add("config", cmd_config, "print the resolved config (defaults, _BASE_ files and overrides applied)")
    estimate = add("estimate", cmd_estimate, "memory per process of training this config, per strategy, and whether it fits")
    estimate.add_argument("--nproc", type=int, default=1, help="processes on this machine (default: 1)")
    estimate.add_argument("--nnodes", type=int, default=1, help="machines (default: 1)")
    estimate.add_argument("--strategy", choices=ESTIMATED_STRATEGIES, help="only this strategy")
    train = add("train", cmd_train, "train from a config, on 1..N processes or GPUs, one machine or several")
    train.add_argument(
        "--nproc", type=int, default=1, help="processes on this machine (CPU: gloo, CUDA: nccl)"
    )
    train.add_argument("--gpus", help="GPU ids to use, e.g. 0,1,2,3 (sets --nproc)")
    train.add_argument("--nnodes", type=int, default=1)
    train.add_argument("--node-rank", type=int, default=0)
    train.add_argument("--master-addr", default="127.0.0.1")
    train.add_argument("--master-port", type=int)
    train.add_argument(
        "--rdzv-endpoint", help="host:port of a c10d rendezvous (instead of --master-addr/--master-port)"
    )
    train.add_argument("--rdzv-id", help="rendezvous id shared by every node (default: $SLURM_JOB_ID, else 'trainlab')")
    train.add_argument("--max-restarts", type=int, default=0,
                       help="restart the processes up to N times when one dies; they resume the run's newest checkpoint")
    train.add_argument(
        "--resume", nargs="?", const="auto", help="continue the latest run (or the given checkpoint)"
    )
    train.add_argument("--force", action="store_true", help="train even when the memory estimate says it cannot fit")
    evaluate = add(
        "eval", cmd_eval, "evaluate a saved model (run dir, checkpoint or .safetensors) on a data split"
    )
    evaluate.add_argument(
        "--checkpoint", required=True, help="run directory (its best checkpoint), checkpoint dir or file"
    )
    evaluate.add_argument("--split", default="test", help="train, val or test (default: test)")
    evaluate.add_argument("--nproc", type=int, default=1, help="processes that each evaluate a shard of the split")
    evaluate.add_argument("--output", help="JSON file to write the metrics to")
    evaluate.add_argument("--report", metavar="DIR", help="folder to write a classification report to: report.json, "
                          "report.md, confusion matrix, ROC and precision-recall curves (PNG)")
    evaluate.add_argument("--overwrite", action="store_true",
                          help="replace --output if it exists, and the report files in a --report DIR that holds files")
    predict = add("predict", cmd_predict, "class probabilities of a saved model for new rows of a CSV file")
    predict.add_argument(
        "--checkpoint", required=True, help="run directory (its best checkpoint), checkpoint dir or file"
    )
    predict.add_argument("--input", required=True, help="CSV in the dataset's raw schema (e.g. Kaggle's)")
    predict.add_argument("--output", required=True, help="CSV to write: id, prob_<class>..., prediction")
    predict.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    generate = add("generate", cmd_generate, "greedy answers of a trained causal LM to prompts, encoded as in training",
                   config=False)
    generate.add_argument("run_dir", help="run directory (its model/ or, with --adapter, adapter/) or an HF model directory")
    prompts = generate.add_mutually_exclusive_group(required=True)
    prompts.add_argument("--prompt", action="append", default=[], help="a prompt text (repeatable)")
    prompts.add_argument("--input", help='JSONL of {"prompt": text} or {"messages": [...]} rows')
    generate.add_argument("--output", help="JSONL to write: prompt, generation")
    generate.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    generate.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate at most (default: 64)")
    generate.add_argument("--adapter", action="store_true",
                          help="the run's base model (MODEL.PRETRAINED) plus its PEFT adapter, instead of model/")
    pre = sub.add_parser(
        "preprocess", help="prepare a dataset: `trainlab preprocess stackoverflow --input CSV --output DIR`"
    )
    pre.add_argument("args", nargs=argparse.REMAINDER)
    pre.set_defaults(func=cmd_preprocess)
    merge = add(
        "merge-lora",
        cmd_merge_lora,
        "merge a saved LoRA adapter into its base model (HF layout)",
        config=False,
    )
    merge.add_argument("checkpoint")
    merge.add_argument("out_dir")
    merge.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty OUT_DIR")
    from . import plot, runs

    runs.add_arguments(add("runs", cmd_runs, "list runs: status, best metric, test metrics, time, differing config keys",
                           config=False, imports=False))
    plot.add_arguments(add("plot", cmd_plot, "loss, learning rate and validation curves of runs as a PNG", config=False,
                           imports=False))
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _resume_value_apart(argv: list[str]) -> list[str]:
    """`--resume TRAINER.MAX_STEPS 1`: the config key is an override, not the checkpoint to resume."""
    return [
        "--resume=auto" if arg == "--resume" and i + 1 < len(argv) and CONFIG_KEY.match(argv[i + 1]) else arg
        for i, arg in enumerate(argv)
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    commands = _subcommands(parser)
    command_at = next((i for i, arg in enumerate(argv) if arg in commands), None)
    if command_at is None or command_at != next(
        (i for i, a in enumerate(argv) if not a.startswith("-")), None
    ):
        args = parser.parse_args(argv)  # prints usage / help and exits
    elif argv[command_at] == "preprocess":  # the task parses its own options, even when they come first
        args = argparse.Namespace(func=cmd_preprocess, args=argv[command_at + 1 :], debug="--debug" in argv[:command_at])
    elif any(arg != "--debug" for arg in argv[:command_at]):  # only --debug goes before the command
        parser.error(f"unrecognized arguments: {' '.join(a for a in argv[:command_at] if a != '--debug')}")
    else:  # options may come after the positional overrides: `trainlab train x.yaml TRAINER.EPOCHS 3 --nproc 2`
        args = commands[argv[command_at]].parse_intermixed_args(_resume_value_apart(argv[command_at + 1 :]))
        args.debug = args.debug or "--debug" in argv[:command_at]
    try:
        return args.func(args)
    except TrainLabError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"trainlab: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("trainlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
