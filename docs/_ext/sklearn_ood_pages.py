"""Write the documentation pages that are generated, not typed (``docs/generated/``).

Sphinx loads this extension from ``conf.py``; on ``config-inited``, before the
source files are listed, it writes the detector list from the registry
(:func:`sklearn_ood.discovery.describe_detectors`), so the page lists every
detector with what its class declares.
"""

from pathlib import Path

from sklearn_ood.discovery import describe_detectors

_INPUTS = {"features": "penultimate features", "maps": "a block's maps",
           "max_avg": "per-channel max and mean of a block's maps",
           "blocks": "pooled outputs of several blocks", "images": "images (runs the model)"}
_HEADS = {"required": "required", "or_logits": "or logits", "optional": "optional", None: "-"}
_LABELS = {"required": "required", "optional": "optional", None: "-"}


def detectors_page():
    """The reStructuredText of the detector list."""
    lines = ["Detectors", "=========", "",
             "Every detector of the library, as its class declares itself "
             "(:class:`~sklearn_ood.discovery.DetectorTags`, listed by",
             ":func:`~sklearn_ood.discovery.describe_detectors`). *Head*: the final linear "
             "layer (``head=``); *or logits*: without it ``X`` is read as logits. *Tuned*: the "
             "knobs of the default pseudo-OOD tuning grid. How each score is computed, and "
             "how faithfully to its paper: :doc:`../user_guide/methods`.", "",
             ".. list-table::", "   :header-rows: 1", "   :widths: 14 16 8 8 14 6 34", "",
             "   * - detector", "     - input", "     - head", "     - labels",
             "     - tuned", "     - ``partial_fit``", "     - what it scores (paper)"]
    for r in describe_detectors():
        tuned = ", ".join(f"``{k}``" for k in r["tuned"]) or "-"
        lines += [f"   * - :class:`~sklearn_ood.{r['name']}`", f"     - {_INPUTS[r['input']]}",
                  f"     - {_HEADS[r['head']]}", f"     - {_LABELS[r['labels']]}",
                  f"     - {tuned}", f"     - {'yes' if r['partial_fit'] else '-'}",
                  f"     - {r['summary'].rstrip('.')} ({r['paper']})"]
    return "\n".join(lines) + "\n"


def write_pages(srcdir):
    """Write the generated pages into ``srcdir/generated``; a file only when it changed."""
    folder = Path(srcdir) / "generated"
    folder.mkdir(exist_ok=True)
    for name, text in {"detectors": detectors_page()}.items():
        path = folder / f"{name}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def setup(app):
    app.connect("config-inited", lambda app, config: write_pages(app.srcdir))
    return {"parallel_read_safe": True}
