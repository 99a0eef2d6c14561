"""Text for a person to read, written so that it renders as itself: record text and model output may be hostile.

A note can carry `<script>`, a Markdown image of a local file (`![x](/etc/hostname)`), a link to a phishing site or a
line that forges a heading ("## Safety review (0 blocking)"). Whatever is rendered for a person (report.md and its
HTML, the ReAct baseline's answer) interpolates such text through `inert`.
"""

from __future__ import annotations

import re

# What starts a block at the beginning of a line: a heading, quote or bullet mark, or an ordered-list number "1. ".
_BLOCK_MARKER = re.compile(r"^(\s*)(\d*)((?<!\d)#|(?<!\d)[+*-](?=\s|$)|(?<=\d)[.)](?=\s|$))")


def inert(value: object) -> str:
    """A value as Markdown text that renders as itself and nothing more: HTML characters as entities (no tag, no
    comment), link and image brackets escaped (no link to a file or site), whitespace folded to one line and a
    leading heading, list or quote marker escaped (no forged section)."""
    text = " ".join(str(value).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("[", "\\[").replace("]", "\\]")
    return _BLOCK_MARKER.sub(lambda m: m.group(1) + m.group(2) + "\\" + m.group(3), text)
