"""What `--help` shows beyond each option's own text: examples, and environment variables.

Help is rendered with rich markup (`rich_markup_mode="rich"`): blank lines separate
paragraphs, a paragraph keeps its own line breaks, and a long line is rewrapped to the
terminal. So a note is one line of text, and each example is a line of its own, short enough
for 80 columns.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape

#: The environment variable that `--weights` falls back to (option > $MATTN_WEIGHTS > bundled
#: demo model). Declared with `envvar=` on each `--weights`, so `--help` names it.
WEIGHTS_ENV = "MATTN_WEIGHTS"

# Examples are indented inside their markup: rich's help renderer strips indentation common to
# all lines (inspect.cleandoc), and a line that starts with markup has none.
_COMMAND_LINE = "[bold]  {}[/bold]"
_COMMENT_LINE = "[dim]  {}[/dim]"


def epilog(examples: Sequence[str], *, notes: Sequence[str] = ()) -> str:
    """The end of a command's `--help`: `notes` (one paragraph each), then the examples.

    An example that starts with "#" is a comment on the ones below it. Text is escaped, so
    brackets (`[stage1]`) are shown as written instead of being read as rich markup.
    """
    lines = [
        _COMMENT_LINE.format(escape(example))
        if example.startswith("#")
        else _COMMAND_LINE.format(escape(example))
        for example in examples
    ]
    paragraphs = [escape(note) for note in notes]
    paragraphs.append("\n".join(["[bold]Examples[/bold]", *lines]))
    return "\n\n".join(paragraphs)
