"""MkDocs hooks: the backbone table of ``docs/backbones.md`` generated from the preset registry
(:data:`hummingbird.models.presets.PRESETS`), where the page says ``<!-- backbones-table -->``, and Sphinx roles
in docstrings shown as plain code in the API reference."""

from __future__ import annotations

MARKER = "<!-- backbones-table -->"


def _normalisation(mean, std) -> str:
    from hummingbird.models import presets

    named = {presets.IMAGENET: "ImageNet", presets.SAT493M: "SAT-493M", presets.OPENAI_CLIP: "OpenAI CLIP",
             presets.HALF: "0.5 / 0.5"}
    return named.get((tuple(mean), tuple(std)), f"{mean} / {std}")


def backbones_markdown() -> str:
    """Every preset as a Markdown table row (the registry's order)."""
    from hummingbird.models.presets import preset_table

    lines = ["| preset | timm model | patch | dim × depth | input | normalisation | positions | official weights |",
             "|---|---|---|---|---|---|---|---|"]
    for row in preset_table():
        lines.append(f"| `{row['preset']}` | `{row['timm_name']}` | {row['patch_size']} | {row['embed_dim']} × "
                     f"{row['depth']} | {row['input_size']} | {_normalisation(row['mean'], row['std'])} | "
                     f"{row['position']} | {row['weights']} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace(MARKER, backbones_markdown()) if MARKER in markdown else markdown


def on_page_content(html: str, page, config, files) -> str:
    """Docstrings use Sphinx roles (``:class:`~a.b.C```); shown as plain code: ``C`` (``~``: last name only)."""
    import re

    html = re.sub(r":(?:meth|mod|func|class|attr|data|obj):\s*(<code>)", r"\1", html)
    return re.sub(r"<code>~(?:[\w]+\.)*([\w]+)</code>", r"<code>\1</code>", html)
