"""Pretrained ImageNet weights: where they come from, downloading them, and their cache.

The sources are data (`PRETRAINED_WEIGHTS`), one entry per variant. A checkpoint is
downloaded once and read (`fetch_checkpoint`); the model it is ported into is saved as a Keras
`.weights.h5` under `$KERAS_HOME/models/swiftformer/` (default `~/.keras`, see
`sources.PretrainedCheckpoint`), so later calls need neither the network nor torch. Downloads
land in a temporary folder that is removed whatever happens, and the cached file appears under
its final name only once complete: an interrupted or corrupt download never leaves a file that
a later call trusts.

Where the files come from can be redirected (air-gapped machines, mirrors, tests):
* `KERAS_SWIFTFORMER_MIRROR` (or `mirror=`): a URL prefix or a local folder holding the files
  under their `mirror_name` (e.g. `SwiftFormer_L1.pth`, `swiftformer-l1/pytorch_model.bin`).
* `HF_ENDPOINT`: the Hugging Face Hub endpoint, as huggingface_hub reads it.
* `KERAS_SWIFTFORMER_GDRIVE_URL`: the Google Drive download URL template (with `{id}`).
"""

import hashlib
import html.parser
import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request

import keras

from keras_swiftformer.io import PARTIAL_PREFIX
from keras_swiftformer.variants import find_variant, get_variant
from keras_swiftformer.weights.checkpoint import infer_architecture, read_checkpoint
from keras_swiftformer.weights.keras_files import read_metadata

GDRIVE_URL = "https://drive.google.com/uc?export=download&id={id}"
HF_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT = 60.0
# The official files are 15-115 MB; no download may exceed this (a server that sends more, or
# announces more, is cut off and its file removed).
MAX_DOWNLOAD_BYTES = 256 * 2**20
# Hosts a Drive confirmation page may send the download to (besides the configured one).
GOOGLE_HOSTS = ("drive.google.com", "docs.google.com", "drive.usercontent.google.com")
STALE_SECONDS = 3600  # leftovers of a killed download older than this are removed

PRETRAINED_WEIGHTS = {
    "imagenet": {
        "description": "current official release (the checkpoints the official README links "
        "since 2023-07-26), ImageNet-1k, distilled",
        "attention_pooling": "normalize",
        "host": "google_drive",
        "variants": {
            "XS": {"id": "12RchxzyiJrtZS-2Bur9k4wcRQMItA43S", "mirror_name": "SwiftFormer_XS.pth", "sha256": None},
            "S": {"id": "1awpcXAaHH38WaHrOmUM8updxQazUZ3Nb", "mirror_name": "SwiftFormer_S.pth", "sha256": None},
            "L1": {"id": "1SDzauVmpR5uExkOv3ajxdwFnP-Buj9Uo", "mirror_name": "SwiftFormer_L1.pth", "sha256": None},
            "L3": {"id": "1DAxMe6FlnZBBIpR-HYIDfFLWJzIgiF0Y", "mirror_name": "SwiftFormer_L3.pth", "sha256": None},
        },
    },
    "imagenet_v1": {
        "description": "first official release (March 2023) as published on the Hugging Face "
        "Hub by MBZUAI, transformers naming",
        "attention_pooling": "softmax_v1",
        "host": "huggingface",
        # The Hub repos have a single commit history we could not read from this offline build
        # machine; "main" is used until a commit hash is recorded here.
        "revision": "main",
        "variants": {
            # swiftformer-xs has model.safetensors; the others only pytorch_model.bin.
            "XS": {"repo": "MBZUAI/swiftformer-xs", "files": ("model.safetensors", "pytorch_model.bin"), "sha256": None},
            "S": {"repo": "MBZUAI/swiftformer-s", "files": ("model.safetensors", "pytorch_model.bin"), "sha256": None},
            "L1": {"repo": "MBZUAI/swiftformer-l1", "files": ("model.safetensors", "pytorch_model.bin"), "sha256": None},
            "L3": {"repo": "MBZUAI/swiftformer-l3", "files": ("model.safetensors", "pytorch_model.bin"), "sha256": None},
        },
    },
}


class WeightsDownloadError(RuntimeError):
    """Pretrained weights could not be fetched."""


def cache_dir():
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", "swiftformer")


def cached_path(variant, weights):
    return os.path.join(cache_dir(), f"swiftformer_{variant.lower()}_{weights}.weights.h5")


def _entry(variant, weights):
    if weights not in PRETRAINED_WEIGHTS:
        raise ValueError(
            f"Unknown pretrained weights {weights!r}. Available: {sorted(PRETRAINED_WEIGHTS)}"
        )
    variant, _ = get_variant(variant)
    return variant, PRETRAINED_WEIGHTS[weights], PRETRAINED_WEIGHTS[weights]["variants"][variant]


def _candidates(variant, release, spec, mirror):
    """[(description, url or local path, file name)] to try in order."""
    if release["host"] == "google_drive":
        names = [spec["mirror_name"]]
    else:
        names = [f"{spec['repo'].split('/')[-1]}/{name}" for name in spec["files"]]
    if mirror:
        mirror = mirror.rstrip("/")
        if "://" in mirror:
            return [(f"mirror {mirror}", f"{mirror}/{name}", name.split("/")[-1]) for name in names]
        return [(f"local folder {mirror}", os.path.join(mirror, name), name.split("/")[-1]) for name in names]
    if release["host"] == "google_drive":
        template = os.environ.get("KERAS_SWIFTFORMER_GDRIVE_URL", GDRIVE_URL)
        return [("Google Drive", template.format(id=spec["id"]), spec["mirror_name"])]
    endpoint = os.environ.get("HF_ENDPOINT", HF_ENDPOINT).rstrip("/")
    return [
        ("Hugging Face Hub", f"{endpoint}/{spec['repo']}/resolve/{release['revision']}/{name}", name)
        for name in spec["files"]
    ]


def _allowed(url, trusted):
    """https to a trusted host, or exactly the scheme and host of a configured endpoint (a
    mirror, `HF_ENDPOINT`, the Drive URL template: the only way http, or a local test server,
    is used). Anything else (file://, another host) is refused before it is fetched."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    for endpoint in trusted:
        configured = urllib.parse.urlsplit(endpoint)
        if parts.scheme == configured.scheme and host == (configured.hostname or "").lower() \
                and parts.port == configured.port:
            return True
    return parts.scheme == "https" and (host in GOOGLE_HOSTS or host.endswith(".googleusercontent.com"))


def _download_http(url, directory, name, timeout, trusted=()):
    """Downloads `url` to `directory/name` with a progress bar: refused unless `_allowed`,
    bounded by `MAX_DOWNLOAD_BYTES` (announced or sent), complete or removed."""
    trusted = tuple(trusted) or (url,)  # by default the URL asked for is the configured endpoint
    if not _allowed(url, trusted):
        raise OSError(f"refused to fetch {url}: only https from the expected hosts, or the configured endpoint")
    path = os.path.join(directory, name)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # timeout: per read, too
            final = response.geturl()
            # Servers redirect to their CDNs (the Hub does): https anywhere, http only back to
            # a configured endpoint.
            if final != url and not (urllib.parse.urlsplit(final).scheme == "https" or _allowed(final, trusted)):
                raise OSError(f"{url} redirected to {final}, which is neither https nor the configured host")
            announced = response.headers.get("Content-Length")
            announced = int(announced) if announced and announced.isdigit() else None
            if announced is not None and announced > MAX_DOWNLOAD_BYTES:
                raise OSError(
                    f"{url} announces {announced / 2**20:.0f} MB; no SwiftFormer checkpoint is over "
                    f"{MAX_DOWNLOAD_BYTES / 2**20:.0f} MB"
                )
            progress = keras.utils.Progbar(announced, unit_name="B") if announced else None
            received = 0
            with open(path, "wb") as file:
                for block in iter(lambda: response.read(1 << 20), b""):
                    received += len(block)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise OSError(
                            f"{url} sent more than {MAX_DOWNLOAD_BYTES / 2**20:.0f} MB, more than any "
                            "SwiftFormer checkpoint; the download was stopped"
                        )
                    file.write(block)
                    if progress is not None:
                        progress.update(received)
            if announced is not None and received != announced:
                raise OSError(f"{url}: the transfer ended after {received} of {announced} bytes")
    except BaseException:
        if os.path.exists(path):
            os.remove(path)
        raise
    return path


def remove_stale_downloads(directory):
    """Removes what a killed process left in the cache folder (download folders, partial
    files) once it is older than `STALE_SECONDS`, so a running fetch keeps its own."""
    if not os.path.isdir(directory):
        return
    now = time.time()
    for entry in os.scandir(directory):
        if not entry.name.startswith((".download-", PARTIAL_PREFIX)):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_SECONDS:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.remove(entry.path)
        except OSError:
            pass  # another process removed it first


class _DriveConfirmationParser(html.parser.HTMLParser):
    """Finds where Drive's "can't scan this file for viruses" page leads: the form
    `#download-form` (action + hidden inputs) or, on older pages, a `confirm=` link."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self.link, self._in_form = None, {}, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == "download-form":
            self.action, self._in_form = attrs.get("action"), True
        elif tag == "input" and self._in_form and attrs.get("type") == "hidden" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value", "")
        elif tag == "a" and "confirm=" in (attrs.get("href") or "") and self.link is None:
            self.link = attrs["href"]

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def _drive_confirmation_url(page, page_url):
    parser = _DriveConfirmationParser()
    parser.feed(page)
    if parser.action:
        query = urllib.parse.urlencode(parser.fields)
        return urllib.parse.urljoin(page_url, parser.action) + ("?" + query if query else "")
    if parser.link:
        return urllib.parse.urljoin(page_url, parser.link)
    return None


def _download_gdrive(url, directory, name, timeout):
    """Drive serves large files behind a confirmation page: fetch, and if an HTML page came
    back, follow its download form, only to Google's download hosts or the configured Drive
    host. (gdown does this too, but only for URLs on Google's own hosts, so it could neither
    use a mirror nor be tested against a local server.)"""
    trusted = (url,)
    path = _download_http(url, directory, name, timeout, trusted)
    with open(path, "rb") as file:
        head = file.read(1 << 20)
    if not head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return path
    os.remove(path)
    confirmed = _drive_confirmation_url(head.decode("utf-8", "replace"), url)
    if confirmed is None:
        raise OSError(
            f"Google Drive answered {url} with an HTML page that has no download link (the "
            "file may be private, removed, or over its download quota)"
        )
    return _download_http(confirmed, directory, name, timeout, trusted)


def _is_not_found(error):
    text = str(error)
    return ": 404 --" in text or "HTTP Error 404" in text


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _help(variant, weights, spec, release):
    name = spec.get("mirror_name") or f"{spec['repo'].split('/')[-1]}/{spec['files'][0]}"
    return (
        "To load the weights without this download, fetch the file on a machine with internet "
        f"and pass its path as --weights PATH (weights=PATH in Python), or set KERAS_SWIFTFORMER_MIRROR to a folder or URL "
        f"holding it as '{name}'."
    )


def cached_weights(variant, weights="imagenet"):
    """The path of the cached Keras weights of a pretrained variant, or None.

    A cached file that cannot be read, or that is not what its name says, is deleted so that
    the next fetch replaces it.
    """
    variant, release, _ = _entry(variant, weights)
    target = cached_path(variant, weights)
    if not os.path.exists(target):
        return None
    if not os.path.isfile(target):
        raise WeightsDownloadError(f"The cache entry {target} is not a file: remove it, then try again.")
    try:
        metadata = read_metadata(target)
    except ValueError:
        metadata = None
    if (
        metadata
        and metadata.get("variant") == variant
        and metadata.get("attention_pooling") == release["attention_pooling"]
    ):
        return target
    os.remove(target)  # unreadable or not what it claims to be: fetch again
    return None


def cache_metadata(variant, weights, location, digest):
    """What the cached weights file of a pretrained variant records about itself."""
    variant, release, _ = _entry(variant, weights)
    return {
        "variant": variant,
        "weights": weights,
        "attention_pooling": release["attention_pooling"],
        "source": location,
        "source_sha256": digest,
    }


def fetch_checkpoint(variant, weights="imagenet", mirror=None, timeout=DEFAULT_TIMEOUT):
    """Downloads and reads the official checkpoint of a pretrained variant.

    Args:
        variant: "XS", "S", "L1" or "L3".
        weights: "imagenet" (current official release) or "imagenet_v1" (first release,
            Hugging Face Hub checkpoints).
        mirror: URL prefix or local folder to fetch from instead of the original hosts
            (default: `KERAS_SWIFTFORMER_MIRROR`).
        timeout: seconds without data after which a download fails.

    Returns:
        (official-key state dict, metadata for the cached file). Nothing is left on disk.
    """
    variant, release, spec = _entry(variant, weights)
    mirror = mirror or os.environ.get("KERAS_SWIFTFORMER_MIRROR")
    try:
        os.makedirs(cache_dir(), exist_ok=True)
        workspace = tempfile.mkdtemp(prefix=".download-", dir=cache_dir())
    except OSError as error:
        raise WeightsDownloadError(
            f"Cannot write the weights cache {cache_dir()} ({error}). Set KERAS_HOME to a writable "
            "folder, or pass a downloaded checkpoint's path as --weights (weights= in Python)."
        ) from error
    remove_stale_downloads(cache_dir())
    failures = []
    try:
        for where, location, name in _candidates(variant, release, spec, mirror):
            if "://" not in location:
                if os.path.isfile(location):
                    raw = location
                else:
                    failures.append(f"{location}: no such file")
                    continue
            else:
                try:
                    if release["host"] == "google_drive" and not mirror:
                        raw = _download_gdrive(location, workspace, name, timeout)
                    else:
                        raw = _download_http(location, workspace, name, timeout)
                except Exception as error:  # noqa: BLE001 - every failure is reported below
                    failures.append(f"{location}: {type(error).__name__}: {error}")
                    if _is_not_found(error):
                        continue  # e.g. a Hub repo without model.safetensors: try the next file
                    break
            digest = _sha256(raw)
            if spec.get("sha256") and digest != spec["sha256"]:
                raise WeightsDownloadError(
                    f"The file from {location} has sha256 {digest}, but {spec['sha256']} is "
                    "recorded for it: the download is corrupt or the file was changed. "
                    + _help(variant, weights, spec, release)
                )
            try:
                state, _ = read_checkpoint(raw)
                check_pretrained_architecture(infer_architecture(state), variant)
            except Exception as error:
                raise WeightsDownloadError(
                    f"The file fetched from {where} ({location}) is not a valid SwiftFormer-"
                    f"{variant} checkpoint: {error}. " + _help(variant, weights, spec, release)
                ) from error
            return state, cache_metadata(variant, weights, location, digest)
        raise WeightsDownloadError(
            f"Could not fetch the '{weights}' weights of SwiftFormer-{variant} "
            f"({release['description']}). Tried: " + "; ".join(failures) + ". "
            + _help(variant, weights, spec, release)
        )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def check_pretrained_architecture(architecture, variant):
    """A checkpoint served as a variant's ImageNet weights must be that variant."""
    _, spec = get_variant(variant)
    if (architecture["depths"], architecture["widths"]) != (tuple(spec["depths"]), tuple(spec["widths"])):
        found = architecture["variant"] or "a custom SwiftFormer"
        raise ValueError(
            f"it holds SwiftFormer-{found} (depths {architecture['depths']}, widths "
            f"{architecture['widths']}), not SwiftFormer-{variant}"
        )
    if architecture["classes"] != 1000:
        raise ValueError(
            f"its head has {architecture['classes']} classes; ImageNet-1k weights have 1000 (a "
            "fine-tuned checkpoint served as the pretrained one?)"
        )


def pretrained_variant(depths, widths, weights):
    """The variant id for pretrained `weights` on this architecture, or a clear error."""
    variant = find_variant(depths, widths)
    if variant is None:
        raise ValueError(
            f"weights={weights!r} exist only for the SwiftFormer variants XS, S, L1 and L3; this "
            f"model has depths {tuple(depths)} and widths {tuple(widths)}."
        )
    return variant
