"""
AV-CANet web demo (Gradio, in the Hugging Face Spaces layout: `app.py` + `requirements.txt`).

    python examples/demo/app.py                          # the demo model, outputs/avcanet-demo (`make demo` makes it)
    python examples/demo/app.py --model org/avcanet-x    # any saved AV-CANet folder or Hub repository
    AVCANET_MODEL=path/to/folder python app.py           # as a Space runs it

Upload a video (or pick a demo clip): the page shows the top emotions with their polarity, the emotion timeline
(class probabilities per segment) and how much of each segment's top emotion comes from the sound and how much
from the picture; a video longer than 30 s is shown whole, as the timeline of its 10 s windows. The model runs
through `pipeline("video-classification", trust_remote_code=True)`, with the pipeline class the checkpoint
carries. A file that cannot be read gets a message in the page, not a stack trace.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import gradio as gr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # examples/timeline.py (in a Space: beside app.py)
from model_notice import synthetic_demo_notice  # noqa: E402
from timeline import save_timeline_plot  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPOSITORY / "outputs" / "avcanet-demo"
MAX_EXAMPLES = 4
LONG_VIDEO_SECONDS, WINDOW_SECONDS = 30.0, 10.0  # a longer upload is shown as a timeline of 10 s windows


def missing_model_message(model: str) -> str | None:
    """Why `model` cannot be used, or None. A Hub id (`org/name`) is left for `pipeline()` to fetch."""
    path = Path(model)
    if path.is_dir():
        if not (path / "config.json").exists():
            return f"`{model}` holds no saved model (no `config.json`)."
        return None
    if path.is_absolute() or path.exists() or model.count("/") != 1:
        hint = ""
        if path == DEFAULT_MODEL:
            hint = " Make the demo model with `make demo` (about a minute of CPU training)."
        return f"No AV-CANet model at `{model}`.{hint} Or start the demo with `--model FOLDER_OR_HUB_ID`."
    return None


def demo_clips(model: str) -> list[str]:
    """A few held-out clips of the synthetic set that `make demo` generates beside its model."""
    videos = Path(model) / "data" / "videos" / "test"
    clips = sorted(videos.rglob("*.mp4")) if videos.is_dir() else []
    by_class = {}  # one clip per class first
    for clip in clips:
        by_class.setdefault(clip.parent.name, str(clip))
    return (list(by_class.values()) + [str(clip) for clip in clips])[:MAX_EXAMPLES]


class EmotionDemo:
    def __init__(self, model: str):
        from transformers import pipeline

        self.classifier = pipeline("video-classification", model=model, trust_remote_code=True)
        self.plots = Path(tempfile.mkdtemp(prefix="avcanet-demo-"))
        self.notice = synthetic_demo_notice(self.classifier.model.config)

    def analyse(self, video: str | None):
        """Top emotions, a status line (polarity, or why the file could not be read) and the timeline plot."""
        if not video:
            return None, "Upload a video or pick a demo clip.", None
        name = Path(video).name
        try:
            windows = {"window_seconds": WINDOW_SECONDS} if video_seconds(video) > LONG_VIDEO_SECONDS else {}
            result = self.classifier(video, top_k=5, timeline=True, **windows)
        except (ValueError, OSError, RuntimeError) as error:  # the processor's VideoDecodingError is a ValueError
            return None, f"**Could not read `{name}`.** {error}", None
        labels = result["labels"]
        top = labels[0]
        status = f"**{top['label']}** ({top['score']:.0%}), polarity **{top['polarity'] or 'unknown'}**."
        if result.get("audio") is False:  # older pipelines do not say: then nothing is claimed
            status += " **No audio track**: the answer comes from the picture alone (no audio share in the timeline)."
        if result.get("truncated"):
            status += (f" **Truncated file**: the picture could not be decoded past {result['decoded_seconds']:.1f} s; "
                       "only that part was used.")  # fmt: skip
        if "windows" in result:  # the whole video, one point per window
            status += f" Whole video in {len(result['windows'])} windows of {WINDOW_SECONDS:g} s."
        entries = result.get("windows") or result["timeline"]
        plot = save_timeline_plot(entries, self.plots / f"{Path(name).stem}.png", title=name)
        return {entry["label"]: entry["score"] for entry in labels}, status, str(plot)


def video_seconds(video: str) -> float:
    """The length of a video file from its container (0 when unknown: it is then treated as short)."""
    import av

    try:
        with av.open(video) as container:
            return (container.duration or 0) / av.time_base
    except (av.error.FFmpegError, OSError):
        return 0.0  # the pipeline reports what is wrong with the file


def build_demo(model: str) -> gr.Blocks:
    problem = missing_model_message(model)
    shown = os.path.relpath(model, REPOSITORY) if Path(model).resolve().is_relative_to(REPOSITORY) else model
    with gr.Blocks(title="AV-CANet emotions") as demo:
        gr.Markdown(
            "# AV-CANet: the emotion of a video, from its sound and its picture\n"
            f"Model: `{shown}`. Upload a short video; the timeline shows the emotion per segment and, below it, how "
            "much of each segment's top emotion the sound and the picture contribute."
        )
        app = None if problem is not None else EmotionDemo(model)
        if app is not None and app.notice:
            gr.Markdown(f"**{app.notice}**", elem_id="notice")
        if problem is not None:
            print(problem, file=sys.stderr)
            gr.Markdown(f"### {problem}", elem_id="model-missing")
            return demo
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video", sources=["upload"], elem_id="video")
                button = gr.Button("Analyse", variant="primary", elem_id="analyse")
                clips = demo_clips(model)
                if clips:
                    gr.Examples(clips, inputs=video, label="Demo clips")
            with gr.Column(scale=2):
                # the labels name the API's outputs: /analyse -> labels, summary, timeline
                status = gr.Markdown(label="summary", elem_id="status")
                emotions = gr.Label(label="labels", show_label=False, num_top_classes=5, elem_id="emotions")
                plot = gr.Image(label="timeline", type="filepath", elem_id="timeline", interactive=False)
        outputs = [emotions, status, plot]
        button.click(app.analyse, inputs=video, outputs=outputs, api_name="analyse")
        # an upload, a demo clip picked, or a clear: the same action, so not a second API endpoint
        video.change(app.analyse, inputs=video, outputs=outputs, api_visibility="private")
    return demo


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("AVCANET_MODEL", str(DEFAULT_MODEL)))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    args = parser.parse_args(argv)
    build_demo(args.model).launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
