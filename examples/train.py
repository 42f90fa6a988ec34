"""
Fine-tune AV-CANet with `transformers.Trainer` and the EP-CE loss.

With no arguments it generates the synthetic audio-visual set, trains a CPU-sized AV-CANet on it, evaluates it on the
held-out test split and saves a folder (model, processor, code, model card, confusion matrix) that loads anywhere
with `trust_remote_code=True`:

    python examples/train.py
    python examples/train.py --dataset_dir data/emotions --model_size paper --init_from outputs/avcanet-pretrained
    python examples/train.py --dataset_name Conna/eMotions --label_set emotions ...      # Hub id or local parquet
    python examples/train.py --dataset_name Conna/eMotions --streaming --max_steps 20000 ...  # never stored on disk
    accelerate launch --config_file examples/accelerate/ddp_multi_gpu.yaml examples/train.py --dataset_dir ...

Every `TrainingArguments` flag works (`--per_device_train_batch_size`, `--gradient_accumulation_steps`,
`--dataloader_num_workers`, `--metric_for_best_model macro_f1`, `--bf16`, ...). A run killed mid-way resumes from
the last checkpoint in `--output_dir` when started again with the same command. Where the data comes from and how
its splits are chosen is `dataset_scripts/sources.py`. With a GPU, the DataLoader defaults to one worker per core
(`gpu_loader_defaults`); any `--dataloader_*` flag given wins.
"""

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate.data_loader import prepare_data_loader
from datasets import IterableDataset
from torch.utils.data import DataLoader
from transformers import HfArgumentParser, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from bad_videos import SkippedVideoLog, drop_bad_rows
from collator import ProcessingCollator
from dataset_scripts import check_prepared_dataset, generate_synthetic, load_training_data, node_share, save_dataset
from dataset_scripts.synthetic import LABEL_POLARITIES as SYNTHETIC_LABEL_POLARITIES
from dataset_scripts.video_folder import read_label_polarities_argument
from host_memory import keep_freed_memory
from long_runs import LongRunTrainerMixin
from metrics.emotion_metrics import confusion_matrix, make_compute_metrics, save_confusion_matrix
from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from out_of_memory import out_of_memory_advice
from processing import AVCANetProcessor
from processing.windows import average_views
from push_to_hub import push_folder_to_hub, write_model_card
from safe_checkpoints import PreemptionCallback, resume_checkpoint

logger = logging.getLogger("avcanet.train")

# A model small enough to learn the synthetic set on two CPU cores in a few minutes; same architecture, fewer units.
CPU_DEMO_SIZES = dict(
    num_segments=4,
    frames_per_segment=4,
    image_size=32,
    swin_embed_dim=24,
    swin_depths=[1, 1],
    swin_num_heads=[2, 4],
    swin_window_size=[2, 4, 4],
    num_mel_bins=32,
    audio_frames_per_segment=16,
    audio_resnet_layers=[1, 1, 1, 1],
    hidden_size=64,
    num_attention_heads=4,
    intermediate_size=64,
    num_pyramid_levels=2,
    global_num_attention_heads=4,
)

# Defaults of the no-argument demo; anything given on the command line comes later and wins.
DEMO_DEFAULTS = [
    "--output_dir", "outputs/avcanet-demo",
    "--num_train_epochs", "5",
    "--per_device_train_batch_size", "8",
    "--per_device_eval_batch_size", "16",
    "--learning_rate", "1e-3",
    "--warmup_steps", "5",
    "--weight_decay", "0.02",
    "--eval_strategy", "epoch",
    "--save_strategy", "epoch",
    "--save_total_limit", "2",
    "--load_best_model_at_end", "true",
    "--metric_for_best_model", "loss",
    "--logging_steps", "5",
    "--report_to", "none",
    "--seed", "1",
    "--ddp_find_unused_parameters", "false",  # AV-CANet builds no parameter it does not use
]  # fmt: skip


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A Hub dataset id, or a local folder or glob of parquet, Arrow or video files, read with "
                  "`datasets.load_dataset`."},
    )  # fmt: skip
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub data set's configuration."})
    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "A data set saved by a `dataset_scripts` command (with label_polarities.json). "
                  "Default (no --dataset_name either): generate the synthetic set into <output_dir>/data."},
    )  # fmt: skip
    streaming: bool = field(
        default=False, metadata={"help": "Stream --dataset_name (never stored on disk); needs --max_steps."}
    )
    shuffle_buffer_size: int = field(default=1000, metadata={"help": "Streaming: examples in the shuffle buffer."})
    label_set: str | None = field(
        default=None, metadata={"help": "The polarity preset of the labels: emotions, ve8, ekman6 or synthetic."}
    )
    label_polarities: str | None = field(
        default=None, metadata={"help": 'JSON (inline or a file): {"<label>": "positive" | "neutral" | "negative"}.'}
    )
    video_column: str | None = field(default=None, metadata={"help": "Default: the Video column, else `video`..."})
    label_column: str | None = field(default=None, metadata={"help": "Default: the ClassLabel column, else `label`..."})
    train_split: str = field(default="train", metadata={"help": "The split to train on."})
    eval_split: str | None = field(
        default=None, metadata={"help": "Default: `validation`, else carved from the train split."}
    )
    test_split: str = field(default="test", metadata={"help": "Evaluated after training when present."})
    validation_split_percentage: float = field(
        default=10, metadata={"help": "Percent of the train split held out for evaluation when there is no eval split."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation examples."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where `datasets` caches what it downloads/converts."}
    )
    synthetic_train_per_class: int = field(
        default=24, metadata={"help": "Synthetic set (no --dataset_dir/--dataset_name): training videos per class."}
    )
    synthetic_eval_per_class: int = field(default=6, metadata={"help": "Synthetic set: validation videos per class."})
    synthetic_test_per_class: int = field(default=10, metadata={"help": "Synthetic set: test videos per class."})
    # a long run and its bad rows: docs/long-runs.md
    skip_video_check: bool = field(
        default=False, metadata={"help": "No decodability pre-pass; bad rows are then only skipped as they come."}
    )
    max_bad_video_fraction: float = field(
        default=0.01, metadata={"help": "Stop when more of a split's videos than this cannot be decoded."}
    )
    eval_num_clips: int = field(
        default=1, metadata={"help": "Also report the test (and final evaluation) metrics over this many temporal "
                             "views per video, averaged (docs/long-videos.md)."},
    )  # fmt: skip
    eval_num_crops: int = field(default=1, metadata={"help": "Spatial views for those metrics: 1 (centre) or 3."})


@dataclass
class ModelArguments:
    model_size: str = field(
        default="cpu-demo",
        metadata={"help": "The CPU-sized demo model or the paper's sizes.", "choices": ["cpu-demo", "paper"]},
    )
    init_from: str | None = field(
        default=None, metadata={"help": "A save_pretrained folder or Hub id to start from (e.g. converted backbones)."}
    )
    classification_loss: str = field(
        default="ep_ce",
        metadata={"help": "EP-CE (cross-entropy weighted up when the predicted polarity is wrong) or plain CE.",
                  "choices": ["ep_ce", "ce"]},
    )  # fmt: skip
    auxiliary_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of the audio-only and visual-only heads' losses."}
    )


def load_data(data_args: DataArguments, training_args: TrainingArguments):
    """The splits of the data set given (`dataset_scripts.sources`), or of the synthetic one, generated once into
    `<output_dir>/data` and reused after."""
    dataset_dir = data_args.dataset_dir
    if dataset_dir is None and data_args.dataset_name is None:
        dataset_dir = Path(training_args.output_dir) / "data" / "synthetic"
        if not (dataset_dir / "dataset_dict.json").exists():
            videos_per_class = {
                "train": data_args.synthetic_train_per_class,
                "validation": data_args.synthetic_eval_per_class,
                "test": data_args.synthetic_test_per_class,
            }
            dataset = generate_synthetic(
                Path(training_args.output_dir) / "data" / "videos", videos_per_class=videos_per_class
            )
            save_dataset(dataset, dataset_dir, SYNTHETIC_LABEL_POLARITIES)
    polarities = data_args.label_polarities
    return load_training_data(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        dataset_dir=dataset_dir,
        streaming=data_args.streaming,
        label_set=data_args.label_set,
        label_polarities=read_label_polarities_argument(polarities) if polarities is not None else None,
        video_column=data_args.video_column,
        label_column=data_args.label_column,
        train_split=data_args.train_split,
        eval_split=data_args.eval_split,
        test_split=data_args.test_split,
        validation_split_percentage=data_args.validation_split_percentage,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        seed=training_args.seed,
        cache_dir=data_args.cache_dir,
    )


def build_model(model_args: ModelArguments, label_polarities: dict[str, str]) -> AVCANetForVideoClassification:
    """A new model, or one started from `--init_from`, whose classes are `label_polarities`' keys in that order."""
    label_settings = dict(
        label_polarities=label_polarities,
        id2label=dict(enumerate(label_polarities)),
        label2id={label: index for index, label in enumerate(label_polarities)},
        classification_loss=model_args.classification_loss,
        auxiliary_loss_weight=model_args.auxiliary_loss_weight,
    )
    if model_args.init_from is not None:
        return AVCANetForVideoClassification.from_pretrained(
            model_args.init_from, ignore_mismatched_sizes=True, **label_settings
        )
    sizes = {"cpu-demo": CPU_DEMO_SIZES, "paper": {}}[model_args.model_size]
    return AVCANetForVideoClassification(AVCANetConfig(**sizes, **label_settings))


class SaveProcessorCallback(TrainerCallback):
    """
    Saves the processor into every checkpoint, so each one runs on raw videos by itself. (Passing a processor without
    a tokenizer as Trainer's `processing_class` fails in transformers 5.23: `align_special_tokens` reads its
    `.tokenizer`.)
    """

    def __init__(self, processor: AVCANetProcessor):
        self.processor = processor

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.processor.save_pretrained(Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")


class AVCANetTrainer(LongRunTrainerMixin, Trainer):
    """
    A Trainer for raw video rows: `data_collator` (a `ProcessingCollator`) decodes the training batches and
    `eval_data_collator` the evaluation and test ones; what they give is finished on the model's device
    (`processor.finish`: the augmentation, the normalisation and the log-mel, the processor's own operations). A
    training stream is already this process's share (`dataset_scripts.node_share`, which reads only that share):
    accelerate would otherwise split it again, or have the main process read every example for all.
    """

    def __init__(self, *args, processor: AVCANetProcessor, eval_data_collator: ProcessingCollator, **kwargs):
        super().__init__(*args, **kwargs)
        self.processor, self.eval_data_collator = processor, eval_data_collator

    def get_train_dataloader(self) -> DataLoader:
        if not isinstance(self.train_dataset, IterableDataset):
            return super().get_train_dataloader()
        args = self.args
        loader = DataLoader(
            self.train_dataset,
            batch_size=self._train_batch_size,
            collate_fn=self.data_collator,
            num_workers=args.dataloader_num_workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers,
            prefetch_factor=args.dataloader_prefetch_factor,
        )
        return prepare_data_loader(
            loader, args.device, num_processes=1, process_index=0, put_on_device=True, dispatch_batches=False
        )

    def get_eval_dataloader(self, eval_dataset=None) -> DataLoader:
        with self._collating_with(self.eval_data_collator):
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset) -> DataLoader:
        with self._collating_with(self.eval_data_collator):
            return super().get_test_dataloader(test_dataset)

    @contextlib.contextmanager
    def _collating_with(self, collator):
        """Trainer builds every DataLoader with `self.data_collator`."""
        training_collator, self.data_collator = self.data_collator, collator
        try:
            yield
        finally:
            self.data_collator = training_collator

    def _prepare_inputs(self, inputs: dict) -> dict:
        return self.processor.finish(super()._prepare_inputs(inputs))  # finished inputs are left as they are

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        """Multi-view batches (more rows than labels): the loss over every view, the logits of each video averaged
        over its views (`average_views`); one view per video: Trainer's own step."""
        views = len(inputs["pixel_values_videos"]) // len(inputs["labels"]) if "labels" in inputs else 1
        if views == 1:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)
        inputs = self._prepare_inputs(inputs)
        labels = inputs.pop("labels")
        with torch.no_grad():
            outputs = model(**inputs, labels=labels.repeat_interleave(views))
        logits = tuple(average_views(outputs[name], views) for name in ("logits", "audio_logits", "visual_logits"))
        return outputs.loss.detach(), None if prediction_loss_only else logits, labels


def gpu_loader_defaults(cpu_count: int, processes_per_machine: int, num_workers: int | None = None) -> list[str]:
    """
    DataLoader flags for a GPU run, placed before the user's (whose flags win). Decoding is the bottleneck there, so
    one worker per core of this process's share (each then decodes with one FFmpeg thread,
    `decoder_threads_for_this_process`), 4 batches prefetched per worker, workers kept between epochs, pinned
    memory. `num_workers`: the user's `--dataloader_num_workers`, if given (0 workers cannot prefetch or persist).
    """
    workers = max(1, cpu_count // max(1, processes_per_machine)) if num_workers is None else num_workers
    defaults = ["--dataloader_num_workers", str(workers), "--dataloader_pin_memory", "true"]
    if workers > 0:
        defaults += ["--dataloader_prefetch_factor", "4", "--dataloader_persistent_workers", "true"]
    return defaults


HELP_DESCRIPTION = """Fine-tune AV-CANet with transformers.Trainer and the EP-CE loss. With no arguments: generate the
synthetic audio-visual set, train the CPU-sized demo model on it, evaluate it on its test split (and without its
audio, and without its picture) and save the folder (model, processor, code, model card) to outputs/avcanet-demo.

example:
  python examples/train.py --output_dir outputs/my-run --dataset_dir data/emotions --label_set emotions
  python examples/train.py --output_dir outputs/my-run --dataset_name Conna/eMotions --model_size paper --bf16

The flags are this script's, then every transformers TrainingArguments flag; "(default: ...)" is the value used
when the flag is not given, the project's defaults included (the demo evaluates and saves every epoch and keeps the
best model). Dependent defaults follow your flags: --save_strategy or --eval_strategy alone (steps or epoch) sets
the other to the same value, --save_steps or --eval_steps alone sets the other too, and a strategy "no" turns
--load_best_model_at_end off. On a machine without an accelerator --dataloader_pin_memory defaults to false."""

USAGE = "python examples/train.py [--output_dir DIR] [--dataset_dir DIR | --dataset_name ID] [FLAG VALUE ...]"


def given_flags(argv: list[str]) -> dict[str, str]:
    """The `--name value` and `--name=value` flags of `argv` (a bare `--flag` is "true")."""
    flags = {}
    for index, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        name, equals, value = arg[2:].partition("=")
        if not equals:
            following = argv[index + 1] if index + 1 < len(argv) else None
            value = following if following is not None and not following.startswith("--") else "true"
        flags[name] = value
    return flags


def dependent_defaults(argv: list[str]) -> list[str]:
    """Flags that keep the demo defaults consistent with what `argv` changes (placed before `argv`): the demo
    evaluates and saves every epoch and loads the best model at the end, which transformers allows only when the
    save and evaluation strategies (and steps) match. So `--save_strategy steps` alone also evaluates in steps (every
    `--save_steps` when given), and a strategy "no" turns `--load_best_model_at_end` off."""
    given, extra = given_flags(argv), []
    strategies = ("steps", "epoch")  # "no" leaves the other one as it is: there is no best model to keep then
    save, evaluate = given.get("save_strategy"), given.get("eval_strategy")
    if save in strategies and evaluate is None:
        extra += ["--eval_strategy", save]
        evaluate = save
    elif evaluate in strategies and save is None:
        extra += ["--save_strategy", evaluate]
        save = evaluate
    if "save_steps" in given and "eval_steps" not in given:
        extra += ["--eval_steps", given["save_steps"]]
    elif "eval_steps" in given and "save_steps" not in given:
        extra += ["--save_steps", given["eval_steps"]]
    if "no" in (save, evaluate) and "load_best_model_at_end" not in given:
        extra += ["--load_best_model_at_end", "false"]
    return extra


class RawDescriptionDefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The description as written, and every flag's default after its help."""


def build_parser() -> HfArgumentParser:
    """The parser of the three argument dataclasses. Its `--help` starts with what the script does and an example,
    and shows the project's defaults (`DEMO_DEFAULTS`) as the flags' defaults."""
    parser = HfArgumentParser(
        (DataArguments, ModelArguments, TrainingArguments),
        usage=USAGE,
        description=HELP_DESCRIPTION,
        formatter_class=RawDescriptionDefaultsHelpFormatter,
    )
    demo_values, _ = parser.parse_known_args(DEMO_DEFAULTS)
    parser.set_defaults(**{arg[2:]: getattr(demo_values, arg[2:]) for arg in DEMO_DEFAULTS if arg.startswith("--")})
    return parser


def parse_arguments(argv: list[str], has_accelerator: bool | None = None):
    """
    The three argument dataclasses from the demo defaults, then `gpu_loader_defaults` when a GPU is used
    (`has_accelerator`, default: detected, and not `--use_cpu`), then `argv`. On CPU the loader flags are left as
    they are: the model is the bottleneck there and 0 workers is fastest.
    """
    parser = build_parser()
    argv = dependent_defaults(argv) + argv
    arguments = parse_with_defaults(parser, DEMO_DEFAULTS + argv)
    training_args = arguments[2]
    if has_accelerator is None:
        has_accelerator = torch.accelerator.is_available()
    if not has_accelerator or training_args.use_cpu:
        if "dataloader_pin_memory" not in given_flags(argv):  # no accelerator to pin for: torch warns per loader
            training_args.dataloader_pin_memory = False
        return arguments
    workers_given = any(arg.split("=")[0] == "--dataloader_num_workers" for arg in argv)
    loader_defaults = gpu_loader_defaults(
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
        training_args.dataloader_num_workers if workers_given else None,
    )
    return parse_with_defaults(parser, DEMO_DEFAULTS + loader_defaults + argv)


def parse_with_defaults(parser: HfArgumentParser, args: list[str]):
    """`parse_args_into_dataclasses`, whose errors about flags that do not fit together also name the project
    defaults that took part (they are not in transformers' "(default: ...)")."""
    try:
        return parser.parse_args_into_dataclasses(args=args)
    except ValueError as error:
        first, last = DEMO_DEFAULTS.index("--eval_strategy"), DEMO_DEFAULTS.index("--logging_steps")
        defaults = " ".join(DEMO_DEFAULTS[first:last])
        raise ValueError(
            f"{error}\nexamples/train.py's defaults include {defaults}: give the flag(s) to change with yours "
            "(see --help)."
        ) from error


def main(argv: list[str] | None = None):
    argv = sys.argv[1:] if argv is None else argv
    data_args, model_args, training_args = parse_arguments(argv)
    # on-the-fly decoding needs the raw `video` column that Trainer would otherwise drop
    training_args.remove_unused_columns = False
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False  # we push our own card, once, at the end
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", level=logging.INFO)
    set_seed(training_args.seed)
    logger.info("Process %d of %d, on %s", training_args.process_index, training_args.world_size, training_args.device)
    if data_args.streaming and training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps: the length of a stream is not known in advance.")

    # the main process writes the synthetic set first; the others then read what it saved
    skipped_videos = SkippedVideoLog(data_args.max_bad_video_fraction)
    with training_args.main_process_first(desc="preparing the data set"):
        data = load_data(data_args, training_args)
        data.train, data.eval, data.test = (
            drop_bad_rows(rows, split, data.video_column, skipped_videos, not data_args.skip_video_check,
                          cache_dir=data_args.cache_dir)
            for rows, split in ((data.train, "train"), (data.eval, "eval"), (data.test, "test"))
        )  # fmt: skip
    model = build_model(model_args, data.label_polarities)
    # predict.py, the demo page and the model card tell the synthetic demo model apart by it (examples/model_notice.py)
    model.config.synthetic_demo = data_args.dataset_dir is None and data_args.dataset_name is None
    processor = AVCANetProcessor.from_model_config(model.config)
    if data_args.dataset_dir is not None:  # a prepared copy that cannot serve this model is refused now, not at batch 1
        check_prepared_dataset(data_args.dataset_dir, processor)

    train_dataset = data.train
    if isinstance(train_dataset, IterableDataset):
        train_dataset = node_share(
            train_dataset,
            training_args.seed,
            data_args.shuffle_buffer_size,
            training_args.process_index,
            training_args.world_size,
        )
    trainer = AVCANetTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=data.eval,
        data_collator=ProcessingCollator(processor, True, data.video_column, seed=training_args.seed),
        eval_data_collator=ProcessingCollator(processor, training=False, video_column=data.video_column),
        processor=processor,
        compute_metrics=make_compute_metrics(model.config.id2label, model.config.label_polarities),
        callbacks=[SaveProcessorCallback(processor), preemption := PreemptionCallback()],
        skipped_videos=skipped_videos,
    )

    resume_from = resume_checkpoint(
        training_args.resume_from_checkpoint, training_args.output_dir, training_args.process_index == 0
    )
    if resume_from is not None:
        logger.info("Resuming from %s", resume_from)
        warn_if_finished(resume_from)
    with out_of_memory_advice(training_args):  # a message naming the batch and the levers, not a traceback
        train_result = trainer.train(resume_from_checkpoint=resume_from)
    if preemption.stopped_at is not None:
        logger.info("Stopped by SIGTERM; saved %s-%d. Resume with the same command (or --resume_from_checkpoint "
                    "last).", Path(training_args.output_dir) / PREFIX_CHECKPOINT_DIR, preemption.stopped_at)
        return trainer
    trainer.save_model()  # best model (load_best_model_at_end) and its code, into output_dir
    if trainer.is_world_process_zero():
        processor.save_pretrained(training_args.output_dir)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)

    if data.test is not None:
        prediction = trainer.predict(data.test, metric_key_prefix="test")
        for modality in ("audio", "video"):
            trainer.eval_data_collator = ProcessingCollator(processor, False, data.video_column, without=modality)
            ablated_metrics = trainer.predict(data.test, metric_key_prefix=f"test_without_{modality}").metrics
            prediction.metrics[f"test_without_{modality}_accuracy"] = ablated_metrics[
                f"test_without_{modality}_accuracy"
            ]
        prediction.metrics.update(multi_view_metrics(trainer, processor, data, data_args))
        trainer.log_metrics("test", prediction.metrics)
        trainer.save_metrics("test", prediction.metrics)
        if trainer.is_world_process_zero():
            training = training_record(data_args, argv)
            Path(training_args.output_dir, "training_run.json").write_text(json.dumps(training, indent=2))
            report_test_set(trainer, prediction, training_args.output_dir, training_args.hub_model_id, training)
            if push_to_hub:
                push_folder_to_hub(training_args.output_dir, training_args.hub_model_id, training_args.hub_token)
    return trainer


def warn_if_finished(checkpoint) -> None:
    """Say so when the checkpoint a run resumes from had finished training: 0 steps are trained then, and the metrics
    printed are those of that earlier model (`make demo` removes the checkpoints to train again from scratch)."""
    state_file = Path(checkpoint) / "trainer_state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if state.get("max_steps") and state.get("global_step", 0) >= state["max_steps"]:
        logger.warning(
            "%s had already finished training (step %d of %d): nothing is trained now, and the results below are "
            "those of that earlier model. To train again from scratch, delete its checkpoint-* folders or use "
            "another --output_dir.",
            checkpoint,
            state["global_step"],
            state["max_steps"],
        )


def training_record(data_args: DataArguments, argv: list[str]) -> dict:
    """What the model card says about the training: the data (and its Hub id) and the command."""
    if data_args.dataset_name is not None:
        is_hub_id = not Path(data_args.dataset_name).exists() and data_args.dataset_name.count("/") == 1
        data = f"`{data_args.dataset_name}`"
        if data_args.dataset_config_name:
            data += f" ({data_args.dataset_config_name})"
        datasets = [data_args.dataset_name] if is_hub_id else []
    elif data_args.dataset_dir is not None:
        data, datasets = f"the saved data set `{data_args.dataset_dir}`", []
    else:
        data, datasets = "the synthetic audio-visual set (`dataset_scripts.synthetic`, generated by the command)", []
    command = " ".join(["python examples/train.py", *map(shlex.quote, argv)])
    return {"data": data, "datasets": datasets, "command": command}


def multi_view_metrics(trainer, processor, data, data_args) -> dict:
    """With `--eval_num_clips K` / `--eval_num_crops C` (K * C > 1): the test metrics over K x C views per video,
    averaged, keyed `test_KxC_views_*` beside the single-view ones, and the final evaluation's likewise (logged)."""
    clips, crops = data_args.eval_num_clips, data_args.eval_num_crops
    if clips * crops == 1:
        return {}
    trainer.eval_data_collator = ProcessingCollator(
        processor, False, data.video_column, num_clips=clips, num_crops=crops
    )
    if data.eval is not None:
        trainer.log_metrics("eval", trainer.evaluate(data.eval, metric_key_prefix=f"eval_{clips}x{crops}_views"))
    return trainer.predict(data.test, metric_key_prefix=f"test_{clips}x{crops}_views").metrics


def report_test_set(trainer: Trainer, prediction, output_dir: str, repo_id: str | None, training: dict | None = None):
    """The confusion matrix (PNG and JSON) and the model card of the saved folder."""
    config = trainer.model.config
    label_names = [config.id2label[index] for index in range(config.num_labels)]
    fused_logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    matrix = confusion_matrix(prediction.label_ids, fused_logits.argmax(-1), config.num_labels)
    save_confusion_matrix(matrix, label_names, Path(output_dir) / "confusion_matrix.png")
    (Path(output_dir) / "confusion_matrix.json").write_text(
        json.dumps({"labels": label_names, "matrix": matrix.tolist()})
    )
    write_model_card(output_dir, config, prediction.metrics, "confusion_matrix.png", repo_id=repo_id, training=training)


if __name__ == "__main__":
    keep_freed_memory()  # a CPU step ~16 % shorter (glibc): the next step reuses the pages this one frees
    main()
