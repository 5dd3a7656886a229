"""Telling the user which model is running, on the node that runs it."""

from __future__ import annotations

import sys


def report_progress_text(text: str) -> None:
    """Show ``text`` under the running node (ComfyUI's progress text) when a server shows this run."""
    from comfy_execution.utils import get_executing_context

    # a running server has imported its module; importing it here would start one's imports in-process
    server = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    context = get_executing_context()
    if server is not None and context is not None:
        server.send_progress_text(text, context.node_id)
