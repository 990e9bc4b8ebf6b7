"""Answer an offer with some of its media sections rejected, which aiortc cannot do.

aiortc answers every media section of an offer, and one it has no common codec for makes
``setRemoteDescription`` fail for the whole offer. JSEP's way (RFC 8829 5.3.1) is to answer such a section
*rejected*: port 0, no place in the BUNDLE group, nothing sent or received, the rest of the session
unaffected. So the sections to reject are set aside before aiortc sees the offer (``set_aside``: cut out, their
mids taken out of the offer's BUNDLE group) and put back into aiortc's answer, rejected, at their places
(``put_back``): the answer's sections stay in the offer's order, as JSEP requires.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from aiortc.sdp import MediaDescription, SessionDescription

_SECTION = re.compile(r"(?=^m=)", re.M)


@dataclass(frozen=True)
class SetAside:
    """A media section cut out of an offer: its place among the offer's sections, its kind, transport profile,
    formats and mid."""

    index: int
    kind: str
    profile: str
    formats: str
    mid: str | None

    def rejected(self, newline: str) -> str:
        """This section as an answer rejects it."""
        lines = [f"m={self.kind} 0 {self.profile} {self.formats}", "c=IN IP4 0.0.0.0"]
        lines += [f"a=mid:{self.mid}"] if self.mid is not None else []
        return newline.join(lines + ["a=inactive", ""])


def _split(sdp: str) -> tuple[str, list[str], str]:
    head, *sections = _SECTION.split(sdp)
    return head, sections, "\r\n" if "\r\n" in sdp else "\n"


def set_aside(sdp: str, reject: Callable[[MediaDescription], bool]) -> tuple[str, list[SetAside]]:
    """The offer without the media sections ``reject`` is true of, and those sections. ``sdp`` must parse
    (``aiortc.sdp.SessionDescription.parse``)."""
    media = SessionDescription.parse(sdp).media
    head, sections, newline = _split(sdp)
    if len(media) != len(sections):
        raise ValueError(f"{len(sections)} media sections, of which aiortc parsed {len(media)}")
    aside = []
    for index, (parsed, text) in enumerate(zip(media, sections)):
        if reject(parsed):
            mline = text.splitlines()[0].split(" ")
            aside.append(SetAside(index, parsed.kind, mline[2] if len(mline) > 2 else parsed.profile,
                                  " ".join(mline[3:]), parsed.rtp.muxId))
    if not aside:
        return sdp, []
    mids = {a.mid for a in aside if a.mid is not None}

    def unbundle(line: str) -> str:
        if not line.startswith("a=group:BUNDLE"):
            return line
        return " ".join(token for token in line.split(" ") if token not in mids)

    head = newline.join(unbundle(line) for line in head.split(newline))
    kept = [text for index, text in enumerate(sections) if index not in {a.index for a in aside}]
    return head + "".join(kept), aside


def put_back(answer: str, aside: list[SetAside]) -> str:
    """aiortc's ``answer`` to the offer ``set_aside`` returned, with the sections set aside answered rejected in
    their places."""
    if not aside:
        return answer
    head, sections, newline = _split(answer)
    for section in sorted(aside, key=lambda a: a.index):
        sections.insert(section.index, section.rejected(newline))
    return head + "".join(sections)
