"""`pipeline("video-classification", model=<saved folder>, trust_remote_code=True)` in a process that never imports
this package: the pipeline class comes from the folder, reads frames and audio from every kind of input, batches,
takes `top_k` and returns the timeline on request; the numbers are those of the model run here directly."""

import json
import os
import subprocess
import sys
import textwrap

import torch

from media import make_video
from modeling_avcanet import AVCANetForVideoClassification, AVCANetProcessor
from saved_model import save_tiny_model

CLEAN_PROCESS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from datasets import Dataset, Video
    from transformers import pipeline

    folder, tone, silent = sys.argv[1:4]
    classifier = pipeline("video-classification", model=folder, trust_remote_code=True)
    decoded_cell = Dataset.from_dict({"video": [tone]}).cast_column("video", Video())[0]["video"]
    stored_cell = Dataset.from_dict({"video": [tone]}).cast_column("video", Video(decode=False))[0]["video"]
    report = {
        "class": type(classifier).__module__ + "." + type(classifier).__name__,
        "path": classifier(tone, top_k=6),
        "bytes": classifier(Path(tone).read_bytes(), top_k=6),
        "file": classifier(open(tone, "rb"), top_k=6),
        "decoded_cell": classifier(decoded_cell, top_k=6),
        "stored_cell": classifier(stored_cell, top_k=6),
        "top_2": classifier(tone, top_k=2),
        "batched": classifier([tone, silent, tone], batch_size=2, top_k=6),
        "timeline": classifier(silent, timeline=True),
    }
    try:
        classifier(folder + "/missing.mp4")
    except ValueError as error:
        report["error"] = f"{type(error).__name__}: {error}"
    classifier.save_pretrained(folder + "-resaved")
    report["resaved"] = pipeline("video-classification", model=folder + "-resaved", trust_remote_code=True)(tone, top_k=6)
    report["package_imported"] = any(name.split(".")[0] in ("modeling_avcanet", "processing") for name in sys.modules)
    print(json.dumps(report))
    """
)


def scores(result) -> dict:
    return {entry["label"]: entry["score"] for entry in result}


def test_pipeline_from_a_saved_folder_in_a_process_that_never_imports_the_package(tmp_path):
    folder = save_tiny_model(tmp_path / "avcanet-tiny", seed=3)
    tone = make_video(tmp_path / "tone.mp4", num_frames=48, fps=24, tone_start_s=0.5)
    silent = make_video(tmp_path / "silent.mp4", num_frames=30, fps=15, with_audio=False)
    config = json.loads((folder / "config.json").read_text())
    impl = config["custom_pipelines"]["video-classification"]["impl"]
    assert impl == "pipeline_avcanet.AVCANetVideoClassificationPipeline"
    assert (folder / "pipeline_avcanet.py").exists()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", CLEAN_PROCESS, str(folder), str(tone), str(silent)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["class"].startswith("transformers_modules.") and report["class"].endswith(
        "pipeline_avcanet.AVCANetVideoClassificationPipeline"
    )
    assert report["package_imported"] is False

    # the same model and processor, run here directly
    model = AVCANetForVideoClassification.from_pretrained(folder).eval()
    processor = AVCANetProcessor.from_pretrained(folder)
    with torch.no_grad():
        inputs = processor(videos=[str(tone), str(silent)])
        expected = model(**inputs).logits.softmax(-1)
        inputs["audio_mask"] = torch.zeros(2, dtype=torch.long)
        without_audio = model(**inputs).logits.softmax(-1)
    id2label = model.config.id2label
    tone_scores = {id2label[k]: float(p) for k, p in enumerate(expected[0])}
    assert (expected[0] - without_audio[0]).abs().max() > 1e-4  # so matching `expected` means the audio was read

    for kind in ("path", "bytes", "file", "decoded_cell", "stored_cell"):
        got = report[kind]
        assert [entry["label"] for entry in got] == sorted(tone_scores, key=tone_scores.get, reverse=True), kind
        for label, score in scores(got).items():
            assert abs(score - tone_scores[label]) < 1e-5, kind
        assert all(entry["polarity"] == model.config.label_polarities[entry["label"]] for entry in got)
    assert report["top_2"] == report["path"][:2]
    assert report["resaved"] == report["path"]

    batched = report["batched"]
    assert len(batched) == 3 and batched[0] == batched[2]
    silent_scores = {id2label[k]: float(p) for k, p in enumerate(expected[1])}
    for label, score in scores(batched[1]).items():
        assert abs(score - silent_scores[label]) < 1e-5
    for label, score in scores(batched[0]).items():
        assert abs(score - tone_scores[label]) < 1e-5

    timeline = report["timeline"]
    assert [entry["label"] for entry in timeline["labels"]] == [entry["label"] for entry in batched[1][:5]]
    assert len(timeline["timeline"]) == model.config.num_segments
    starts = [entry["start"] for entry in timeline["timeline"]]
    assert starts == sorted(starts) and all(0 <= e["start"] < e["end"] <= 2.0 + 1e-3 for e in timeline["timeline"])
    # the segment probabilities are those of the segment logits, whose mean is the prediction
    with torch.no_grad():
        outputs = model(**processor(videos=str(silent)))
    segment_probabilities = outputs.segment_logits[0].softmax(-1)
    for entry, probabilities in zip(timeline["timeline"], segment_probabilities):
        assert abs(entry["score"] - float(probabilities.max())) < 1e-3

    assert report["error"].startswith("VideoDecodingError") and "missing.mp4" in report["error"]
