"""Every registry TrainLab has, with the built-in modules each imports on its first miss."""

from .registry import Registry

MODELS = Registry("models", locations=["trainlab.models"])  # nn.Modules built from the MODEL section
# DatasetBase subclasses (DATASET.TRAIN|VAL|TEST)
DATASETS = Registry(
    "datasets", locations=["trainlab.datasets.stackoverflow", "trainlab.datasets.causal_lm", "trainlab.datasets.coop"]
)
TRAINERS = Registry("trainers", locations=["trainlab.trainers"])  # BaseTrainer subclasses (TRAINER.NAME)
OPTIMIZERS = Registry("optimizers", locations=["trainlab.optim"])  # every torch.optim optimizer by class name
SCHEDULERS = Registry("schedulers", locations=["trainlab.optim"])  # every torch LR scheduler + warmup schedules
LOSSES = Registry("losses", locations=["trainlab.optim"])  # every torch.nn loss by class name
METRICS = Registry("metrics", locations=["trainlab.metrics"])  # metrics that accumulate and merge across ranks
HOOKS = Registry("hooks", locations=["trainlab.engine.builtin_hooks", "trainlab.engine.adapter_hook",
                                     "trainlab.engine.generation_hook"])  # loop hooks
TRACKERS = Registry("trackers", locations=["trainlab.engine.trackers"])  # where metrics go (TRAINER.LOGGERS)
COLLATORS = Registry("collators", locations=["trainlab.datasets.collators"])  # batch collators (a dataset's collate_fn may use them)
# how the model is placed, wrapped, stepped and checkpointed (TRAINER.STRATEGY: auto | single | ddp | ...)
STRATEGIES = Registry("strategies", locations=["trainlab.engine.strategies"])

ALL_REGISTRIES = {
    registry.name: registry
    for registry in (MODELS, DATASETS, TRAINERS, OPTIMIZERS, SCHEDULERS, LOSSES, METRICS, HOOKS, TRACKERS, COLLATORS, STRATEGIES)
}
