"""What a detector needs of the models, checked before it runs.

A row whose detector needs what the run's models lack is skipped, with the
reason, instead of failing (or, before, stopping the run). The checks read
the spec and the detector it builds, never the detector's name:

* its model: the L2 model (a second model, with an L2-normalised feature)
  exists only when the benchmark trains the library's architectures;
* its input: maps need a block with ``(N, C, H, W)`` output before the
  feature block (:attr:`~.features.Layout.inputs`);
* a detector given the head that reads the last map's channels (``maps``,
  ``maxavg``, ``pooled``) applies the head to one value per channel: the map
  needs as many channels as the head has inputs (no layer between them);
* a detector that runs the model checks it with its ``_check_model()``
  (e.g. MCDropout: a dropout layer), whose ``ValueError`` is the reason.
"""

from .features import head_of, layout_of

__all__ = ["CHANNEL_INPUTS", "skip_reason"]

#: The inputs with one value (``maxavg``: two) per channel of the last map.
CHANNEL_INPUTS = ("maps", "maxavg", "pooled")


def skip_reason(spec, nets):
    """Why ``spec``'s detector cannot run on ``nets``, or ``None`` when it can.

    Parameters
    ----------
    spec : DetectorSpec
    nets : dict
        Model kind -> ``torch.nn.Module``: the run's models.

    Returns
    -------
    reason : str or None

    Examples
    --------
    >>> from torch import nn
    >>> from sklearn_ood.benchmark.features import Layout
    >>> from sklearn_ood.benchmark.preconditions import skip_reason
    >>> from sklearn_ood.benchmark.specs import select_detectors
    >>> net = nn.Sequential()
    >>> net.add_module("conv", nn.Conv2d(1, 4, 3))
    >>> net.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    >>> net.add_module("hidden", nn.Linear(4, 8))
    >>> net.add_module("fc", nn.Linear(8, 3))
    >>> net.benchmark_layout = Layout(("conv",), "hidden", "fc", (4,))
    >>> energy, rankfeat = select_detectors(["energy", "rankfeat"])
    >>> skip_reason(energy, {"plain": net}) is None
    True
    >>> print(skip_reason(rankfeat, {"plain": net}))  # doctest: +NORMALIZE_WHITESPACE
    applies the head 'fc' (8 inputs) to the 4 channels of 'conv', the last map block:
    it needs as many channels there as the head has inputs (no layer between them)
    """
    if spec.model not in nets:
        return ("needs a second model, with an L2-normalised feature, which this run does not "
                "have (a model of yours, or a --weights file saved without it)")
    net = nets[spec.model]
    layout = layout_of(net)
    if spec.features not in layout.inputs:
        return ("reads maps: name a block with (N, C, H, W) output before the feature block "
                "in --blocks")
    try:
        detector = spec.make(net)
    except Exception:  # noqa: BLE001 - not a precondition: the run reports it as a failure
        return None
    if spec.features in CHANNEL_INPUTS and detector.get_params(deep=False).get("head") is not None:
        n_in, channels = head_of(net).in_features, layout.channels[-1]
        if n_in != channels:
            return (f"applies the head {layout.head!r} ({n_in} inputs) to the {channels} "
                    f"channels of {layout.stages[-1]!r}, the last map block: it needs as many "
                    "channels there as the head has inputs (no layer between them)")
    check = getattr(detector, "_check_model", None)
    if check is not None:
        try:
            check()
        except ValueError as exc:
            return str(exc)
    return None
