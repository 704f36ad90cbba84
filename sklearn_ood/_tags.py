"""What a detector takes and needs, declared once on its class (a leaf module).

Every detector class sets ``_detector_tags`` to a :class:`DetectorTags`, as
scikit-learn estimators declare their ``__sklearn_tags__``. The base classes
read it (which arrays ``fit`` accepts, whether the head and the labels are
required), and so do the registry (:func:`sklearn_ood.discovery.all_detectors`),
the benchmark's rows, the test and perf tables and the documentation's
detector list: what a detector is, is written in one place.
"""

from dataclasses import dataclass

__all__ = ["DetectorTags", "get_detector_tags", "tuning_grid"]

INPUTS = ("features", "maps", "max_avg", "blocks", "images")
HEADS = ("required", "or_logits", "optional", None)
LABELS = ("required", "optional", None)


@dataclass(frozen=True)
class DetectorTags:
    """What a detector takes (its input) and needs (head, labels), and its tuning grid.

    Parameters
    ----------
    input : {"features", "maps", "max_avg", "blocks", "images"}
        What the detector scores, as a benchmark feeds it: ``"features"`` the
        penultimate features ``(n, D)`` (the head's input); ``"maps"`` one
        block's feature maps ``(n, C, H, W)``; ``"max_avg"`` the per-channel
        ``[max | mean]`` of a block's maps, side by side ``(n, 2C)``;
        ``"blocks"`` the pooled outputs of several blocks, side by side;
        ``"images"`` images, through a model the detector runs itself.
    ndim : tuple of int, default=(2,)
        The array ranks ``fit`` accepts: 2-D rows and/or 4-D maps
        ``(n, C, H, W)``. Ignored for ``"images"``.
    head : {"required", "or_logits", "optional"} or None, default=None
        The ``head=`` parameter (the final linear layer): ``"required"``;
        ``"or_logits"``: without it ``X`` is read as logits; ``"optional"``:
        an extra the score can use (e.g. NECO's max-logit factor).
    labels : {"required", "optional"} or None, default=None
        Whether ``fit`` needs class labels ``y``, can use them (and falls
        back to a label-free fit without), or ignores them.
    ood_rows : bool, default=False
        ``fit`` also learns from the OOD rows (negative labels) it is given,
        e.g. a combiner fitted on pseudo-OOD rows.
    calibrated : tuple of str, default=()
        The fitted attributes that are *calibrating* statistics: they set the
        scale of a score or weigh scores against each other (a softmax
        temperature, the standardisation of block scores, a combiner's
        weights, a normaliser) rather than model the in-distribution data.
        ``fit`` fits them on held-out calibration rows, never seen by the
        modelling statistics: ``X_cal`` or a ``calibration_size`` share of
        the ID rows (:mod:`sklearn_ood._calibration`). Empty: none.
    grid : dict, callable or None, default=None
        The knob values pseudo-OOD tuning searches by default, for
        :class:`~sklearn.model_selection.ParameterGrid`; a callable
        ``grid(n_samples)`` when the values depend on the number of
        training rows. ``None``: nothing to tune.
    paper : str, default=""
        The reference, as "Authors, Venue Year".

    Examples
    --------
    >>> from sklearn_ood import ReAct
    >>> tags = get_detector_tags(ReAct)
    >>> tags.input, tags.head, tags.labels
    ('features', 'required', None)
    """

    input: str
    ndim: tuple = (2,)
    head: object = None
    labels: object = None
    ood_rows: bool = False
    calibrated: tuple = ()
    grid: object = None
    paper: str = ""

    def __post_init__(self):
        for name, value, allowed in (("input", self.input, INPUTS), ("head", self.head, HEADS),
                                     ("labels", self.labels, LABELS)):
            if value not in allowed:
                raise ValueError(f"DetectorTags.{name} must be one of {allowed}; got {value!r}.")
        if not set(self.ndim) <= {2, 4} or not self.ndim:
            raise ValueError(f"DetectorTags.ndim must hold 2 and/or 4; got {self.ndim!r}.")
        if not isinstance(self.calibrated, tuple) or not all(
                isinstance(name, str) and name.endswith("_") for name in self.calibrated):
            raise ValueError("DetectorTags.calibrated must be a tuple of fitted attribute "
                             f"names (ending in '_'); got {self.calibrated!r}.")


def get_detector_tags(detector):
    """The :class:`DetectorTags` of a detector class or instance.

    Raises
    ------
    TypeError
        For an object that declares no detector tags.
    """
    tags = getattr(detector, "_detector_tags", None)
    if not isinstance(tags, DetectorTags):
        name = getattr(detector, "__name__", type(detector).__name__)
        raise TypeError(f"{name} declares no DetectorTags (class attribute _detector_tags).")
    return tags


def tuning_grid(detector, n_samples):
    """The default pseudo-OOD tuning grid of ``detector`` for ``n_samples`` training rows.

    Returns
    -------
    grid : dict or None
        Parameter name -> values; ``None`` when the detector declares no grid.

    Examples
    --------
    >>> from sklearn_ood import KNN
    >>> tuning_grid(KNN, 30)
    {'n_neighbors': [1, 5, 10, 20]}
    """
    grid = get_detector_tags(detector).grid
    return grid(n_samples) if callable(grid) else grid
