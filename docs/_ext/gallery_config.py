"""Callables of ``sphinx_gallery_conf``, named by string so the config stays picklable."""


def reset_argv(gallery_conf, script_vars):
    """Command-line arguments each example runs with in the gallery.

    The L2 example trains two ResNets; in the gallery it trains them for 5
    epochs with one torch thread to keep the documentation build short.
    """
    if script_vars["src_file"].endswith("l2_normalized_resnet.py"):
        return ["--threads", "1", "--epochs", "5"]
    return []


def png_scraper(block, block_vars, gallery_conf):
    """Embed the PNG files an example writes to its working directory.

    ``examples/l2_normalized_resnet.py`` draws with a bare
    :class:`matplotlib.figure.Figure` (no pyplot state) and saves it with
    ``--out``; sphinx-gallery runs examples in their own folder, so the file
    lands in ``examples/``. It is moved into the gallery's image folder, so
    the source tree stays clean.
    """
    import shutil
    from pathlib import Path

    from sphinx_gallery.scrapers import figure_rst

    src_dir = Path(block_vars["src_file"]).parent
    images = []
    for png in sorted(src_dir.glob("*.png")):
        target = block_vars["image_path_iterator"].next()
        shutil.move(png, target)
        images.append(target)
    return figure_rst(images, gallery_conf["src_dir"])
