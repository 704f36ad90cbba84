"""The benchmark's options, resolved (ID-set presets) and validated into one :class:`Settings`.

This module imports neither PyTorch nor scikit-learn (the detectors are looked
up when the options are resolved): the command line builds its ``--help`` from
its presets.
"""

import os
from dataclasses import dataclass, replace

from ..datasets import BENCHMARKS
from .data import EMBEDDED_OOD, check_path, looks_like_path
from .exceptions import BenchmarkError

__all__ = ["ARCHITECTURES", "AUGMENTATIONS", "ID_SETS", "MIN_TRAIN", "OWN_PRESET", "Settings",
           "resolve_settings"]

MIN_TRAIN = 100
#: The architectures the benchmark trains (:data:`~.models.MODULES`).
ARCHITECTURES = ("smallcnn", "resnet18")
#: Training augmentations: none, or a random horizontal flip and 4-pixel padded crop.
AUGMENTATIONS = ("none", "flip-crop")

#: Per ID set: default OOD sets and training settings (chosen to fit the time
#: budgets on 2 CPU cores: digits < 2 min, MNIST < 20 min). Optional keys:
#: ``data`` (the :data:`~sklearn_ood.datasets.BENCHMARKS` set holding the images,
#: default: the ID set's name), ``groups`` (OOD group name -> its sets, each group
#: averaged apart in the report, as OpenOOD's near-/far-OOD) and ``pretrained``
#: (model kind -> file name in ``--models-dir``: the models are loaded, never
#: trained; the training options then only describe how they were trained) and
#: ``caps`` (detector key -> ``max_fit`` and ``max_eval`` over its spec's: fewer
#: images for the costly detectors, named in the row, see :func:`preset_detectors`)
#: and ``validation`` (``"test"``: the validation images are a stratified split of
#: the test set, for models trained on every training image; default: of the
#: training images, held out from training).
ID_SETS = {
    "digits": dict(ood=EMBEDDED_OOD, model="smallcnn", width=16, epochs=30,
                   batch_size=64, max_train=0, augment="none"),
    "mnist": dict(ood=("fashion_mnist", "usps", "textures"), model="resnet18", width=16,
                  epochs=5, batch_size=128, max_train=12000, augment="none"),
    "cifar10": dict(ood=("dtd",), model="resnet18", width=16, epochs=30, batch_size=128,
                    max_train=0, augment="flip-crop"),
    # The papers' setting: the two shared ResNet-18-layout models trained on all
    # 50,000 CIFAR-10 training images (JPEG copy), detectors fitted on the
    # 20,000-image class-balanced subset, OpenOOD's near-/far-OOD split; the
    # validation images are 1,000 test images, as in OpenOOD v1.5.
    "cifar10-resnet18": dict(
        data="cifar10_jpeg", ood=("tin", "dtd", "mnist"), validation="test",
        groups={"near": ("tin",), "far": ("dtd", "mnist")}, model="resnet18", width=16,
        epochs=20, batch_size=128, max_train=0, augment="flip-crop",
        pretrained={"plain": "cifar10_resnet18_w16_plain.pt",
                    "l2": "cifar10_resnet18_w16_l2.pt"},
        # About 4 forward passes' worth per image each (a backward pass and a second
        # forward); on every image of every set they would take the run past 15
        # minutes on 2 cores, so they see 1,000 images of each set.
        caps={key: dict(max_fit=1000, max_eval=1000)
              for key in ("odin", "input_preprocessed_mahalanobis", "adascale")}),
}

#: The defaults of an ID set given as a path (``.npz`` or image folder): no
#: default OOD set (``--ood`` is required), a SmallCNN trained on it unless
#: ``--model package.module:factory`` gives the model.
OWN_PRESET = dict(ood=(), model="smallcnn", width=16, epochs=30, batch_size=64, max_train=0,
                  augment="none")


def preset_detectors(preset, detectors=None):
    """The detector specs of a run (``detectors``; ``None``: all), with the preset's caps.

    A capped spec fits on at most ``max_fit`` fit images, is scored on a seeded
    sample of at most ``max_eval`` images of each set and says so in its name.

    Examples
    --------
    >>> from sklearn_ood.benchmark.settings import ID_SETS, preset_detectors
    >>> [s.name for s in preset_detectors(ID_SETS["cifar10-resnet18"], ["odin", "energy"])]
    ['Energy', 'ODIN (1,000 images per set)']
    >>> [s.name for s in preset_detectors(ID_SETS["digits"], ["odin"])]
    ['ODIN']
    """
    from .specs import select_detectors

    caps = preset.get("caps", {})
    return [replace(spec, name=f"{spec.name} ({caps[spec.key]['max_eval']:,} images per set)",
                    **caps[spec.key]) if spec.key in caps else spec
            for spec in select_detectors(detectors)]


@dataclass(frozen=True)
class Settings:
    """The options of one run, every default filled in and checked.

    Attributes
    ----------
    id_set : str
        The in-distribution set: a key of :data:`ID_SETS`, or a path (an
        ``.npz`` file or an image folder, split as
        :data:`~sklearn_ood.benchmark.data.OWN_SPLIT` says).
    ood_sets : tuple of str
        The OOD sets' names, in table order.
    ood_paths : dict
        OOD set name -> its path, for the sets given as paths (``.npz`` files
        or image folders; the name is the file or folder name without
        ``.npz``, or the path itself when two names would clash).
    data_dir : str or None
        Folder of the shared ``.npz`` files.
    id_data : str
        The set holding the ID images (a :data:`~sklearn_ood.datasets.BENCHMARKS`
        key, or ``"digits"``).
    ood_groups : dict
        OOD group name (e.g. ``"near"``) -> its OOD sets of this run; empty
        when the ID set defines no groups.
    models_dir : str or None
        Folder of the trained models of a ``pretrained`` preset.
    model_files : dict
        Model kind -> path of its state dict in ``models_dir`` (empty: train).
    model : str
        The architecture (one of :data:`ARCHITECTURES`), or
        ``"package.module:factory"``: the user's model (:attr:`own_model`).
    width : int
        Channels of the first block.
    epochs : int
        Training epochs.
    batch_size : int
        Training batch size.
    lr : float or None
        Initial SGD learning rate (``None``: ``make_classifier``'s default).
    augment : str
        Training augmentation (one of :data:`AUGMENTATIONS`).
    weights : str or None
        File to load the models from instead of training them (with the
        user's model: its state dict).
    save_weights_to : str or None
        File to save the models to.
    seed : int
        Seeds the split, training, jigsaw puzzles and randomised detectors.
    detectors : tuple of DetectorSpec
        The detectors to run, in table order.
    max_train : int
        Cap on the fit set (0: no cap).
    tune : bool
        Whether to add the pseudo-OOD tuned rows.
    progress : bool
        Whether to log stages and show progress bars on stderr.
    blocks : tuple of str
        The user's model: its blocks to read, the feature block last.
    head : str or None
        The user's model: its final ``nn.Linear``.
    validation : {"train", "test"}
        Where the validation images come from when ``val_path`` is ``None``:
        the training images (held out from training) or the test set.
    val_path : str or None
        An ``.npz`` file or image folder of validation images (``--val``).
    """

    id_set: str
    ood_sets: tuple
    ood_paths: dict
    data_dir: object
    id_data: str
    ood_groups: dict
    models_dir: object
    model_files: dict
    model: str
    width: int
    epochs: int
    batch_size: int
    lr: object
    augment: str
    weights: object
    save_weights_to: object
    seed: int
    detectors: tuple
    max_train: int
    tune: bool
    progress: bool
    blocks: tuple = ()
    head: object = None
    validation: str = "train"
    val_path: object = None

    @property
    def own_model(self):
        """Whether the model is the user's (``--model package.module:factory``)."""
        return ":" in self.model

    @property
    def eval_sets(self):
        """The image sets every detector is scored on: ``"ID test"``, then the OOD sets."""
        return ("ID test", *self.ood_sets)

    @property
    def model_kinds(self):
        """The models to train: ``"plain"``, and ``"l2"`` when a detector reads it."""
        if self.own_model or not any(s.model == "l2" for s in self.detectors):
            return ("plain",)
        return ("plain", "l2")

    def with_models(self, models):
        """The settings as the run used them, once its models exist.

        A weights file sets the architecture and width. (The detectors the
        models cannot serve are skipped by the run, with the reason.)

        Parameters
        ----------
        models : Models

        Returns
        -------
        Settings
        """
        return replace(self, model=models.arch, width=models.width)

    def config(self):
        """The settings as :attr:`BenchmarkResult.config` reports them (detectors by key)."""
        return dict(id_set=self.id_set, ood_sets=list(self.ood_sets), ood_paths=self.ood_paths,
                    ood_groups={k: list(v) for k, v in self.ood_groups.items()},
                    models_dir=self.models_dir, model=self.model,
                    width=self.width, epochs=self.epochs, batch_size=self.batch_size,
                    lr=self.lr, augment=self.augment, seed=self.seed,
                    max_train=self.max_train, weights=self.weights, tune=self.tune,
                    detectors=[s.key for s in self.detectors], data_dir=self.data_dir,
                    blocks=list(self.blocks), head=self.head, val=self.val_path)


def resolve_settings(id_set="digits", ood_sets=None, *, data_dir=None, models_dir=None,
                     model=None, width=None, epochs=None, batch_size=None, lr=None, augment=None,
                     weights=None, save_weights_to=None, seed=0, detectors=None, max_train=None,
                     tune=True, progress=False, blocks=None, head=None, val=None):
    """Fill in the ID set's defaults and check every option.

    Parameters are those of :func:`~sklearn_ood.benchmark.run_benchmark`; ``None``
    takes the ID set's preset (:data:`ID_SETS`; width 16 for a non-default
    architecture).

    Returns
    -------
    Settings

    Raises
    ------
    BenchmarkError
        For an unknown set, detector, architecture or augmentation, a missing
        ``data_dir``, ``models_dir``, model or ``weights`` file, or an
        out-of-range option.

    Examples
    --------
    >>> from sklearn_ood.benchmark.settings import resolve_settings
    >>> s = resolve_settings(model="resnet18", detectors=["energy"])
    >>> s.ood_sets, s.model, s.width, s.epochs, s.model_kinds
    (('digits_8_9', 'photo_patches'), 'resnet18', 16, 30, ('plain',))
    """
    ood_sets = check_sets(id_set, ood_sets, data_dir)
    ood_sets, ood_paths = _name_paths(id_set, ood_sets)
    if val is not None:
        check_path(val, "--val")
        if not val.endswith(".npz"):
            raise BenchmarkError(f"--val {val!r} must be an .npz file (arrays x: images, y: "
                                 "their class labels, in the ID set's class order).")
    preset = ID_SETS.get(id_set, OWN_PRESET)
    specs = preset_detectors(preset, detectors)
    own_model = model is not None and ":" in model
    if own_model:
        _check_own_model_options(model, blocks=blocks, head=head, options={
            "--width": width, "--epochs": epochs, "--batch-size": batch_size, "--lr": lr,
            "--augment": augment, "--save-weights": save_weights_to,
            "--models-dir": models_dir})
    elif blocks or head:
        raise BenchmarkError("--blocks and --head apply only to a model of yours, given as "
                             "--model package.module:factory.")
    if preset.get("pretrained"):
        _check_pretrained_options(id_set, model=model, width=width, weights=weights)
    model = _default(model, preset["model"])
    if model not in ARCHITECTURES and not own_model:
        raise BenchmarkError(f"Unknown model {model!r}; choose from {', '.join(ARCHITECTURES)}, "
                             "or give a model of yours as package.module:factory.")
    groups = {name: tuple(s for s in sets if s in ood_sets)
              for name, sets in preset.get("groups", {}).items()}
    settings = Settings(
        id_set=id_set, ood_sets=tuple(ood_sets), ood_paths=ood_paths, data_dir=data_dir,
        id_data=preset.get("data", id_set),
        ood_groups={name: sets for name, sets in groups.items() if sets},
        models_dir=models_dir, model_files={}, model=model,
        width=_default(width, preset["width"] if model == preset["model"] else 16),
        epochs=_default(epochs, preset["epochs"]),
        batch_size=_default(batch_size, preset["batch_size"]), lr=lr,
        augment=_default(augment, preset["augment"]), weights=weights,
        save_weights_to=save_weights_to, seed=seed, detectors=tuple(specs),
        max_train=_default(max_train, preset["max_train"]), tune=bool(tune),
        progress=bool(progress), blocks=tuple(blocks or ()), head=head,
        validation=preset.get("validation", "train"), val_path=val)
    _check_training(settings)
    if own_model:
        return settings
    return replace(settings, model_files=_model_files(settings, preset.get("pretrained")))


def _name_paths(id_set, ood_sets):
    """Table names for the OOD sets given as paths: ``(names, {name: path})``."""
    known = set(EMBEDDED_OOD) | set(BENCHMARKS)
    paths = [s for s in ood_sets if s not in known]
    short = {p: os.path.basename(os.path.normpath(p)).removesuffix(".npz") for p in paths}
    taken = [*short.values(), *(s for s in ood_sets if s in known), "ID test", "average"]
    names = {p: n if n and taken.count(n) == 1 else p for p, n in short.items()}
    return [names.get(s, s) for s in ood_sets], {names[p]: p for p in paths}


def _default(value, default):
    return default if value is None else value


def _check_own_model_options(model, *, blocks, head, options):
    """A model of the user's needs ``--blocks`` and ``--head``; nothing is trained."""
    for option, value in (("--blocks", blocks), ("--head", head)):
        if not value:
            raise BenchmarkError(f"{option} is required with --model {model}: name the "
                                 "model's blocks to read (the feature block last) and its "
                                 "final nn.Linear.")
    given = [option for option, value in options.items() if value is not None]
    if given:
        raise BenchmarkError(f"--model {model} loads your model (nothing is trained): "
                             f"{', '.join(given)} cannot apply.")


def _check_pretrained_options(id_set, *, model, width, weights):
    """A preset with trained models fixes the architecture and takes no weights file."""
    preset = ID_SETS[id_set]
    if weights is not None:
        raise BenchmarkError(f"--id {id_set} loads its models from --models-dir; drop --weights.")
    for option, value, fixed in (("--model", model, preset["model"]),
                                 ("--width", width, preset["width"])):
        if value is not None and value != fixed:
            raise BenchmarkError(f"--id {id_set} loads trained {preset['model']} models of "
                                 f"width {preset['width']}; {option} {value} cannot apply.")


def _model_files(settings, pretrained):
    """Model kind -> its file in ``models_dir``, each checked to exist (``{}``: train)."""
    if not pretrained:
        if settings.models_dir is not None:
            with_models = [k for k, p in ID_SETS.items() if p.get("pretrained")]
            raise BenchmarkError(
                f"--models-dir applies only to the ID sets with trained models "
                f"({', '.join(with_models)}); --id {settings.id_set} trains its models.")
        return {}
    files = ", ".join(pretrained[kind] for kind in settings.model_kinds)
    if settings.models_dir is None:
        raise BenchmarkError(
            f"--models-dir is required for --id {settings.id_set}: point it at the folder "
            f"holding {files}.")
    if not os.path.isdir(settings.models_dir):
        raise BenchmarkError(f"--models-dir {settings.models_dir!r} is not a directory; point "
                             f"it at the folder holding {files}.")
    paths = {kind: os.path.join(settings.models_dir, pretrained[kind])
             for kind in settings.model_kinds}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        raise BenchmarkError(
            f"--id {settings.id_set} needs the trained model file(s) {', '.join(missing)}, "
            f"which do not exist; point --models-dir at the folder holding {files}.")
    return paths


def _check_training(settings):
    """The training options: augmentation, integer ranges, weights file."""
    if settings.augment not in AUGMENTATIONS:
        raise BenchmarkError(f"Unknown augmentation {settings.augment!r}; choose from "
                             f"{', '.join(AUGMENTATIONS)}.")
    for option, value, low in (("--width", settings.width, 1), ("--epochs", settings.epochs, 1),
                               ("--batch-size", settings.batch_size, 1),
                               ("--max-train", settings.max_train, 0)):
        if int(value) != value or value < low:
            raise BenchmarkError(f"{option} must be an integer >= {low}; got {value!r}.")
    if 0 < settings.max_train < MIN_TRAIN:
        raise BenchmarkError(f"--max-train must be 0 (no cap) or at least {MIN_TRAIN}; got "
                             f"{settings.max_train}.")
    if settings.weights is not None and not os.path.isfile(settings.weights):
        raise BenchmarkError(f"--weights {settings.weights!r} does not exist or is not a file.")


def check_sets(id_set, ood_sets, data_dir):
    """Validate the set names and paths (and ``data_dir`` when a set needs it).

    Parameters
    ----------
    id_set : str
        A key of :data:`ID_SETS`, or a path (``.npz`` file or image folder).
    ood_sets : list of str or None
        Names or paths; ``None``: the ID set's defaults.
    data_dir : str or None

    Returns
    -------
    ood_sets : list of str
    """
    own = id_set not in ID_SETS
    if own:
        if not looks_like_path(id_set):
            raise BenchmarkError(
                f"--id {id_set!r}: no such file or folder, nor a known ID set "
                f"({', '.join(ID_SETS)}). Give a known set, or a path to an .npz file "
                "(arrays x, y) or an image folder (one subfolder per class).")
        check_path(id_set, "--id")
        if not ood_sets:
            raise BenchmarkError(f"--ood is required with --id {id_set}: name OOD sets or "
                                 "give paths to .npz files or image folders.")
    ood_sets = list(ood_sets) if ood_sets else list(ID_SETS[id_set]["ood"])
    known = (list(EMBEDDED_OOD) if id_set == "digits" else []) + sorted(BENCHMARKS)
    paths = [n for n in ood_sets if n not in known and looks_like_path(n)]
    for path in paths:
        check_path(path, "--ood")
    unknown = [n for n in ood_sets if n not in known and n not in paths]
    if unknown:
        raise BenchmarkError(
            f"--ood {', '.join(map(repr, unknown))}: no such file or folder, nor a known OOD "
            f"set for --id {id_set} ({', '.join(known)}). Give known sets, or paths to .npz "
            "files or image folders."
        )
    if not own and (id_set in ood_sets or ID_SETS[id_set].get("data") in ood_sets):
        raise BenchmarkError(f"The ID set {id_set!r} cannot also be an OOD set.")
    if own and any(os.path.abspath(p) == os.path.abspath(id_set) for p in paths):
        raise BenchmarkError(f"The ID set {id_set!r} cannot also be an OOD set.")
    if len(set(ood_sets)) != len(ood_sets):
        raise BenchmarkError(f"OOD sets listed twice: {ood_sets}.")
    needed_by = ([f"--id {id_set}"] if id_set != "digits" and not own else []) + [
        n for n in ood_sets if n not in EMBEDDED_OOD and n not in paths
    ]
    if needed_by:
        _check_data_dir(data_dir, needed_by)
    return ood_sets


def _check_data_dir(data_dir, needed_by):
    if data_dir is None:
        raise BenchmarkError(
            f"--data-dir is required for {', '.join(needed_by)}: point it at the folder "
            "holding the shared .npz files."
        )
    if not os.path.isdir(data_dir):
        raise BenchmarkError(
            f"--data-dir {data_dir!r} is not a directory (needed for "
            f"{', '.join(needed_by)}). Point it at the folder holding the .npz files."
        )
