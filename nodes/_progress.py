"""Telling the user which model is running, on the node that runs it."""

from __future__ import annotations


def report_progress_text(text: str) -> None:
    """Show ``text`` under the running node (ComfyUI's progress text) when a server shows this run."""
    from comfy_execution.utils import get_executing_context
    from server import PromptServer

    server, context = getattr(PromptServer, "instance", None), get_executing_context()
    if server is not None and context is not None:  # in-process runs have neither
        server.send_progress_text(text, context.node_id)
