"""The data cache: where a dataset named without a folder is found, and prepared first when it is not there
(as torchvision's ``download=True``), so that ``hummingbird evaluate --dataset voc`` needs no ``--data-root``.

The cache is the folder ``$HUMMINGBIRD_DATA`` names, else ``~/.cache/hummingbird/data``. Each dataset has its
own folder there, laid out as ``hummingbird prepare-data NAME --root <cache>/NAME`` leaves it::

    <cache>/voc/VOCdevkit/VOC2012/...        <cache>/voc/downloads/   (its archives)
    <cache>/ade20k/ADEChallengeData2016/...
    <cache>/coco_stuff/coco/...
    <cache>/cityscapes/cityscapes/...

A dataset folder found there is used as it is, whoever put it there (``HUMMINGBIRD_DATA=../shared`` serves
the shared VOC and ADE20K copies). One that is absent is prepared there by
:func:`hummingbird.datasets.prepare.prepare_dataset`, archives already in ``<cache>/NAME/downloads/`` first;
offline, or for Cityscapes (whose archives need a login), the error names the archives to fetch and the
folder to put them in.
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from hummingbird.datasets.prepare import PrepareResult, dataset_folders, prepare_dataset
from hummingbird.datasets.prepare.archives import ARCHIVES, DATASET_ARCHIVES, LOGIN_ONLY, PREPARED_DATASETS
from hummingbird.errors import ConfigError, DatasetError, DownloadUnavailableError, OutputBusyError, warn

DATA_ENV = "HUMMINGBIRD_DATA"
CACHED_DATASETS = PREPARED_DATASETS  # the datasets prepare-data can build: voc, ade20k, coco_stuff, cityscapes
WAIT_S = 2.0  # between looks at a cache folder another process is preparing


def data_cache() -> Path:
    """``$HUMMINGBIRD_DATA``, else ``~/.cache/hummingbird/data``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "hummingbird" / "data").expanduser().absolute()


def cache_folder(dataset: str) -> Path:
    """``<cache>/<dataset>``: the ``--root`` of ``prepare-data`` for this dataset."""
    return data_cache() / dataset


def cached_data_root(dataset: str) -> Path | None:
    """The dataset's data root in the cache if its folder is there, else ``None``."""
    folder, data_root = dataset_folders(dataset, cache_folder(dataset))
    return data_root if folder.is_dir() else None


def dataset_from_cache(dataset: str, progress: bool = True) -> PrepareResult:
    """The dataset in the data cache: found (``prepared_now`` false, no checks), or prepared there now
    (downloaded, verified, extracted, converted and checked, as ``prepare-data`` does).

    Raises :class:`~hummingbird.errors.ConfigError` for a dataset the cache does not hold (a ``folder``
    dataset, COCO things), :class:`~hummingbird.errors.DownloadUnavailableError` offline and
    :class:`~hummingbird.errors.DatasetError` for Cityscapes without its archives, each naming the archives
    and where to put them."""
    if dataset not in CACHED_DATASETS:
        raise ConfigError(f"--dataset {dataset} needs its folder (--data-root DIR): the data cache holds only "
                          f"{', '.join(CACHED_DATASETS)}")
    found = cached_data_root(dataset)
    if found is not None:
        return PrepareResult(dataset, str(found), prepared_now=False)
    root = cache_folder(dataset)
    with _preparing(root):
        found = cached_data_root(dataset)  # another process may have prepared it while we waited
        if found is not None:
            return PrepareResult(dataset, str(found), prepared_now=False)
        downloads = root / "downloads"
        given = [downloads] if downloads.is_dir() else []
        if dataset in LOGIN_ONLY:
            missing = [n for n in DATASET_ARCHIVES[dataset] if not (downloads / n).is_file()]
            if missing:
                raise DatasetError(_login_message(dataset, root, missing))
        try:
            return prepare_dataset(dataset, root, from_archive=given, progress=progress)
        except DownloadUnavailableError as exc:
            raise DownloadUnavailableError(_offline_message(dataset, root, exc.reason), exc.reason) from None


@contextmanager
def _preparing(root: Path) -> Iterator[None]:
    """Hold ``<root>.lock`` while a dataset is prepared in ``root``; wait while another process holds it."""
    from hummingbird.files.locking import exclusive_output

    with ExitStack() as stack:
        told = False
        while True:
            try:
                stack.enter_context(exclusive_output(root, "data cache folder"))
                break
            except OutputBusyError:
                if not told:
                    warn(f"another hummingbird process is preparing {root}; waiting for it")
                    told = True
                time.sleep(WAIT_S)
        yield


def _archives(names: list[str]) -> str:
    listed = [f"{n} ({ARCHIVES[n].size})" for n in names]
    return listed[0] if len(listed) == 1 else ", ".join(listed[:-1]) + " and " + listed[-1]


def _offline_message(dataset: str, root: Path, reason: str) -> str:
    names = list(DATASET_ARCHIVES[dataset])
    return (f"{dataset} is not in the data cache ({data_cache()}) and cannot be downloaded ({reason}): "
            f"get {_archives(names)}, put {'them' if len(names) > 1 else 'it'} in {root / 'downloads'}/ and run "
            f"again, or run: hummingbird prepare-data {dataset} --root {root} --from-archive ARCHIVE...; "
            f"or give --data-root DIR")


def _login_message(dataset: str, root: Path, missing: list[str]) -> str:
    from urllib.parse import urlsplit

    host = urlsplit(ARCHIVES[missing[0]].url).netloc
    return (f"{dataset} is not in the data cache ({data_cache()}) and its archives need a login: log in at {host}, "
            f"download {_archives(missing)}, put {'them' if len(missing) > 1 else 'it'} in {root / 'downloads'}/ "
            f"and run again, or run: hummingbird prepare-data {dataset} --root {root} --from-archive ARCHIVE...; "
            f"or give --data-root DIR")
