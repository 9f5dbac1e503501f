"""Web demo: ``python -m lavis_vislinginstruct.web [--host 127.0.0.1] [--port 7860] [model flags]``.

Listens on 127.0.0.1 unless ``--host`` says otherwise; never shares a public link and sends no analytics. Model flags
as the terminal chat (``--model``, ``--model-type``, ``--model-spec``, ``--options``, ``--device``); with none, the
demo world's trained model (``demo_output/model.yaml``) or the tiny random one, announced on the page.
"""
import argparse
import logging
import os
from typing import List, Optional

from ..chat.launch import add_model_arguments, decoding_from_args, load_or_exit

logger = logging.getLogger("lavis_vislinginstruct.web")

#: Set before Gradio is imported: no usage analytics, no update check, no telemetry of the HF hub client.
QUIET_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "GRADIO_SERVER_NAME": "127.0.0.1"}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lavis_vislinginstruct.web", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--examples", default=None,
                        help="folder of example images (default: demo_output/world's GQA images, else generated)")
    add_model_arguments(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None, block: bool = True):
    """Start the server; with ``block=False`` return ``(page, url)`` once it listens."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    args = parse_args(argv)
    try:
        decoding = decoding_from_args(args)
    except ValueError as err:
        raise SystemExit(f"error: {err}")
    loaded = load_or_exit(args)

    import gradio as gr

    from .app import CSS, build_page
    from .examples import example_images, example_questions

    examples = example_images(folder=args.examples)
    page = build_page(loaded, examples, example_questions(), decoding)
    folders = sorted({os.path.dirname(p) for p in examples})
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # no web fonts fetched
    page.queue(default_concurrency_limit=1)  # one generation at a time: the model is shared
    _, url, _ = page.launch(server_name=args.host, server_port=args.port, share=False, inbrowser=False,
                            prevent_thread_lock=True, allowed_paths=folders, theme=theme, css=CSS, ssr_mode=False,
                            footer_links=["api"], quiet=True)
    print(f"VisLingInstruct web demo on {url} (model: {loaded.description}"
          f"{', random weights' if loaded.random_weights else ''})", flush=True)
    if not block:
        return page, url
    try:
        page.block_thread()
    except KeyboardInterrupt:
        page.close()
    return page, url


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
