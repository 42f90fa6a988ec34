"""Batch inference: `examples/predict.py`'s `predict()` in videos/s with 0, 1 and 2 DataLoader workers decoding
ahead of the model, measured side by side in one run on the same files and the same model.

With 0 workers the model waits while each batch decodes; with workers, decoding the next batches overlaps the
model's forward on this one. Each measurement includes the workers' start-up (one `predict()` call, as one run of the
script). The model has random weights of the chosen sizes (the speed does not depend on the weights).

    python benchmarks/predict_workers.py           # paper-sized model, 16 copies of the 10 s 640x360 clip
    python benchmarks/predict_workers.py --quick   # CPU-demo-sized model, 6 copies (< 1 min)
    python benchmarks/predict_workers.py --device cuda --bf16 --workers 0 4 8 --videos 256 --batch_size 16
"""

import argparse
import sys
import time

import torch
from common import DEFAULT_MEDIA_DIR, REPO, machine, markdown_table, media_file

from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from processing import AVCANetProcessor

sys.path.insert(0, str(REPO / "examples"))
from predict import predict
from train import CPU_DEMO_SIZES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-demo-sized model, 6 videos")
    parser.add_argument("--model_size", choices=["paper", "cpu-demo"], default=None)
    parser.add_argument("--videos", type=int, default=None, help="copies of the clip to predict (default 16)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    model_size = args.model_size or ("cpu-demo" if args.quick else "paper")
    count = args.videos or (6 if args.quick else 16)

    clip = media_file("10s_640x360", DEFAULT_MEDIA_DIR)
    videos = [clip] * count  # the same file each time, read through the page cache: decoding, not the disk, is timed
    config = AVCANetConfig(**(CPU_DEMO_SIZES if model_size == "cpu-demo" else {}))
    model = AVCANetForVideoClassification(config).to(args.device).eval()
    processor = AVCANetProcessor.from_model_config(config)
    list(predict(model, processor, videos[:1], top_k=1, batch_size=1, bf16=args.bf16))  # warm-up

    rows = []
    for workers in args.workers:
        start = time.perf_counter()
        results = list(predict(model, processor, videos, 1, args.batch_size, num_workers=workers, bf16=args.bf16))
        seconds = time.perf_counter() - start
        assert not [result for result in results if "error" in result], results
        rows.append([workers, f"{seconds:.1f}", f"{count / seconds:.2f}"])
        print(f"{workers} worker(s): {count / seconds:.2f} videos/s", flush=True)

    print(f"\n{machine()}; torch threads {torch.get_num_threads()}")
    print(f"predict(): {model_size} model on {args.device}{' bf16' if args.bf16 else ''}, {count} x 10 s 640x360 "
          f"H.264 + AAC, batch {args.batch_size}\n")  # fmt: skip
    print(markdown_table(["DataLoader workers", "seconds", "videos/s"], rows))


if __name__ == "__main__":
    main()
