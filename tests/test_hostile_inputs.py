"""A catalogue of hostile and faulty inputs: checkpoints, downloads, images, training folders,
caches and outputs. Each case ends in a clear error naming the problem (or the right result),
runs no code from the input, leaves nothing behind, and, where the input claims more than it
holds, stays within a memory bound measured in a subprocess."""

import io
import os
import pickle
import struct
import subprocess
import sys
import time
import warnings
import zipfile

import numpy as np
import pytest
from helpers import TINY, digits_folder, optional, subprocess_environment

torch = optional("torch")
optional("transformers")
PIL_Image = optional("PIL.Image")
h5py = optional("h5py")
from fake_hosts import FakeHosts  # noqa: E402
from reference import build_reference, official_state_dict  # noqa: E402

import keras_swiftformer  # noqa: E402
from keras_swiftformer.cli import main as swiftformer  # noqa: E402
from keras_swiftformer.models import VARIANTS  # noqa: E402
from keras_swiftformer.preprocessing import load_image  # noqa: E402
from keras_swiftformer.weights import CheckpointError, WeightsDownloadError, pretrained  # noqa: E402
from keras_swiftformer.weights.checkpoint import read_checkpoint  # noqa: E402
from keras_swiftformer.weights.keras_files import METADATA_ATTRIBUTE  # noqa: E402

# File formats, downloads and images do not depend on the Keras backend; the TensorFlow session
# has the most room (torch is imported here only to write checkpoints).
pytestmark = pytest.mark.any_backend(runs_on="tensorflow")

# Peak memory a hostile file may add, measured in a subprocess: twice the largest variant's
# weights (L3, 114 MB in float32).
MEMORY_BOUND_MB = 2 * 114


def record(case, outcome):
    """The catalogue line of a case (`pytest -s` prints them; the closing note lists them)."""
    print(f"CASE {case}: {outcome}")


@pytest.fixture(scope="module")
def tiny_state():
    reference = build_reference(TINY["depths"], TINY["widths"], classes=TINY["classes"], seed=5)
    return {key: value.clone() for key, value in official_state_dict(reference).items()}


def _save(path, obj):
    torch.save(obj, path)
    return str(path)


def _peak_rss_mb(code):
    """How far (MB) running `code` in a fresh Python raises its peak resident memory above the
    memory in use just before (after the imports), and what it said."""
    script = (
        "import sys\n"
        "from keras_swiftformer.weights.checkpoint import read_checkpoint\n"
        "from keras_swiftformer.preprocessing import load_image\n"
        "def status(key):\n"
        "    return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1])\n"
        "open('/proc/self/clear_refs', 'w').write('5')  # the peak (VmHWM) starts again from here\n"
        "before = status('VmRSS')\n"
        f"try:\n    {code}\n    print('ok')\nexcept Exception as error:\n    print(type(error).__name__, error)\n"
        "print((status('VmHWM') - before) / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=subprocess_environment(KERAS_BACKEND="torch"))
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0 and len(lines) >= 2, result.stderr[-2000:]
    return float(lines[-1]), lines[-2]


# --- checkpoints ---------------------------------------------------------------------------

def test_deflated_pickle_bomb_is_refused_before_it_expands(tmp_path):
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("archive/data.pkl", b"\0" * (300 * 2**20))  # 300 MB of zeros, ~300 KB on disk
        archive.writestr("archive/version", "3\n")
    assert path.stat().st_size < 2**20
    peak, said = _peak_rss_mb(f"read_checkpoint({str(path)!r})")
    assert said.startswith("CheckpointError") and "expands to" in said
    assert peak < MEMORY_BOUND_MB
    record("3 MB-class .pth whose DEFLATE data.pkl expands to 300 MB", f"CheckpointError, peak +{peak:.0f} MB")


def test_zero_stride_view_claiming_millions_of_classes(tmp_path, tiny_state):
    state = dict(tiny_state, **{"head.weight": torch.zeros(1, 32).expand(5_000_000, 32),
                                "head.bias": torch.zeros(1).expand(5_000_000)})
    path = _save(tmp_path / "wide.pth", {"model": state})
    assert os.path.getsize(path) < 2**20
    peak, said = _peak_rss_mb(f"read_checkpoint({path!r})")
    assert said.startswith("CheckpointError") and "claims shape (5000000, 32)" in said
    assert peak < MEMORY_BOUND_MB
    record(".pth with a zero-stride head view claiming 5,000,000 classes", f"CheckpointError, peak +{peak:.0f} MB")


@pytest.mark.parametrize("name, value, message", [
    ("nan", float("nan"), "NaN or infinite"),
    ("inf", float("inf"), "NaN or infinite"),
])
def test_non_finite_weights_are_refused(tmp_path, tiny_state, name, value, message):
    state = dict(tiny_state)
    state["head.bias"] = state["head.bias"].clone()
    state["head.bias"][3] = value
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(_save(tmp_path / f"{name}.pth", {"model": state}))
    record(f"checkpoint with a {name} value", "CheckpointError naming the tensor")


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool, torch.int64])
def test_integer_and_bool_tensors_are_refused(tmp_path, tiny_state, dtype):
    state = dict(tiny_state, **{"norm.weight": tiny_state["norm.weight"].to(dtype)})
    with pytest.raises(CheckpointError, match="floating point"):
        read_checkpoint(_save(tmp_path / "int.pth", state))
    record(f"checkpoint with a {dtype} tensor where floats belong", "CheckpointError (dtype)")


def test_non_string_keys(tmp_path, tiny_state):
    state = dict(tiny_state)
    state[7] = state.pop("norm.weight")
    path = _save(tmp_path / "keys.pth", state)
    with pytest.raises(CheckpointError, match="not a string"):
        read_checkpoint(path)
    assert swiftformer(["convert", path, "-o", str(tmp_path / "out.weights.h5")]) == 1
    assert not (tmp_path / "out.weights.h5").exists()
    record("state dict with a non-string key (convert)", "CheckpointError; exit code 1, no output")


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = None


def test_pickle_that_would_run_code(tmp_path, monkeypatch):
    global MARKER
    MARKER = str(tmp_path / "pwned")
    path = tmp_path / "evil.pth"
    torch.save({"model": {"norm.weight": torch.ones(3)}, "x": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="Refused"):
        read_checkpoint(str(path))
    assert not os.path.exists(MARKER)
    record("pickle whose __reduce__ runs a shell command", "CheckpointError (refused), command not run")


def test_legacy_pickle_with_a_global(tmp_path):
    path = tmp_path / "legacy.pth"
    path.write_bytes(pickle.dumps(_RunsCode(), protocol=2))
    with pytest.raises(CheckpointError):
        read_checkpoint(str(path))
    assert not os.path.exists(str(tmp_path / "pwned"))
    record("legacy (non-zip) pickle with a code global", "CheckpointError, command not run")


def test_file_larger_than_any_checkpoint(tmp_path):
    path = tmp_path / "huge.pth"
    with open(path, "wb") as file:
        file.write(b"PK\x03\x04")
        file.seek(700 * 2**20)
        file.write(b"\0")  # sparse: 700 MB on paper
    with pytest.raises(CheckpointError, match="larger than any SwiftFormer checkpoint"):
        read_checkpoint(str(path))
    record("700 MB (sparse) .pth", "CheckpointError before reading")


@pytest.mark.parametrize("suffix, content, message", [
    (".pth", b"this is a text file, renamed", "truncated, corrupt"),
    (".pth", b"<!DOCTYPE html><html>quota exceeded</html>", "HTML page"),
    (".safetensors", b"\x01\x02", "truncated, corrupt"),
])
def test_files_that_are_not_checkpoints(tmp_path, suffix, content, message):
    path = tmp_path / f"fake{suffix}"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(str(path))
    record(f"{content[:20]!r} named {suffix}", "CheckpointError")


def _safetensors(header_text, data=b""):
    raw = header_text.encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize("case, blob, message", [
    ("the same tensor named twice (F32, then I32 over the same bytes)",
     _safetensors('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
                  '"a": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 8), "more than once"),
    ("a header length beyond the file", struct.pack("<Q", 10**12) + b"{}", "header length"),
    ("a header that is not JSON", _safetensors("{not json"), "not JSON"),
    ("an I32 tensor", _safetensors('{"a": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}', b"\0" * 8),
     "floating point"),
    ("offsets outside the file", _safetensors('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}',
                                              b"\0" * 8), "outside the file"),
    ("a shape claiming 2.5 billion values",
     _safetensors('{"a": {"dtype": "F32", "shape": [5000000, 512], "data_offsets": [0, 8]}}', b"\0" * 8),
     "claims shape"),
])
def test_hostile_safetensors(tmp_path, case, blob, message):
    optional("safetensors")
    path = tmp_path / "x.safetensors"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(str(path))
    record(f"safetensors with {case}", "CheckpointError")


# --- Keras weights files and the cache ------------------------------------------------------

def _tiny_weights(tmp_path, metadata=True):
    model = keras_swiftformer.SwiftFormer(TINY["depths"], TINY["widths"], classes=TINY["classes"])
    path = str(tmp_path / "tiny.weights.h5")
    from keras_swiftformer.models.swiftformer import architecture
    from keras_swiftformer.weights import save_weights

    save_weights(model, path, {**architecture(model)} if metadata else None)
    return path


def _build(path):
    return keras_swiftformer.SwiftFormer(TINY["depths"], TINY["widths"], weights=path)


@pytest.mark.parametrize("case, change, message", [
    ("metadata that is not JSON", lambda f: f.attrs.__setitem__(METADATA_ATTRIBUTE, "{oops"), "damaged"),
    ("metadata that is a JSON list", lambda f: f.attrs.__setitem__(METADATA_ATTRIBUTE, "[1, 2]"), "damaged"),
    ("metadata missing its keys", lambda f: f.attrs.__setitem__(METADATA_ATTRIBUTE, '{"format": 1}'), "missing"),
])
def test_damaged_weights_metadata(tmp_path, case, change, message):
    path = _tiny_weights(tmp_path)
    with h5py.File(path, "a") as file:
        change(file)
    with pytest.raises(ValueError, match=message):
        _build(path)
    record(f".weights.h5 with {case}", "ValueError (damaged record)")


def test_integer_variables_in_a_weights_file(tmp_path):
    path = _tiny_weights(tmp_path, metadata=False)
    with h5py.File(path, "a") as file:
        name = next(n for n in _datasets(file) if n.endswith("vars/0"))
        values = file[name][()]
        del file[name]
        file[name] = values.astype("int32")
    with pytest.raises(ValueError, match="not floating point"):
        _build(path)
    record(".weights.h5 whose variables are int32", "ValueError (dtype)")


def _datasets(file):
    names = []
    file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


def test_cached_file_with_a_damaged_record_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    target = pretrained.cached_path("XS", "imagenet")
    os.makedirs(os.path.dirname(target))
    _tiny_weights(tmp_path)
    os.replace(tmp_path / "tiny.weights.h5", target)
    with h5py.File(target, "a") as file:
        file.attrs[METADATA_ATTRIBUTE] = "[1, 2]"
    assert pretrained.cached_weights("XS", "imagenet") is None and not os.path.exists(target)
    record("cached weights whose record is a JSON list", "treated as damaged: removed, fetched again")


def test_cache_entry_that_is_a_folder_and_cache_folder_that_is_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "a"))
    os.makedirs(pretrained.cached_path("XS", "imagenet"))
    with pytest.raises(WeightsDownloadError, match="not a file"):
        pretrained.cached_weights("XS", "imagenet")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "b"))
    os.makedirs(tmp_path / "b" / "models")
    (tmp_path / "b" / "models" / "swiftformer").write_text("in the way")
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", str(tmp_path))
    with pytest.raises(WeightsDownloadError, match="KERAS_HOME to a writable folder"):
        pretrained.fetch_checkpoint("XS", "imagenet")
    record("cache entry that is a folder; cache folder that is a file", "WeightsDownloadError saying what to do")


def test_stale_partial_downloads_are_cleaned(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cache = pretrained.cache_dir()
    os.makedirs(os.path.join(cache, ".download-old"))
    open(os.path.join(cache, ".partial-old.weights.h5"), "w").close()
    os.makedirs(os.path.join(cache, ".download-running"))
    old = time.time() - 2 * pretrained.STALE_SECONDS
    for name in (".download-old", ".partial-old.weights.h5"):
        os.utime(os.path.join(cache, name), (old, old))
    pretrained.remove_stale_downloads(cache)
    assert sorted(os.listdir(cache)) == [".download-running"]  # a running fetch keeps its folder
    record("leftovers of a killed download (older than an hour / fresh)", "removed / kept")


# --- downloads ------------------------------------------------------------------------------

@pytest.fixture
def hosts(tmp_path, monkeypatch):
    with FakeHosts() as fake:
        monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("KERAS_SWIFTFORMER_GDRIVE_URL", fake.url + "/uc?id={id}")
        monkeypatch.delenv("KERAS_SWIFTFORMER_MIRROR", raising=False)
        yield fake


def _cache_is_clean():
    cache = pretrained.cache_dir()
    return not os.path.exists(cache) or os.listdir(cache) == []


def _drive_page(action):
    def respond(handler):
        body = (f'<!DOCTYPE html><html><form id="download-form" action="{action}">'
                '<input type="hidden" name="confirm" value="t"></form></html>').encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return respond


@pytest.mark.parametrize("action", ["file:///etc/passwd", "file:///dev/zero", "http://example.com/x.pth",
                                    "https://attacker.example/x.pth"])
def test_drive_page_cannot_send_the_download_elsewhere(hosts, action):
    hosts.custom["/uc"] = _drive_page(action)
    with pytest.raises(WeightsDownloadError) as error:
        pretrained.fetch_checkpoint("XS", "imagenet", timeout=5)
    assert "refused to fetch" in str(error.value) and "root:" not in str(error.value)
    assert _cache_is_clean()
    record(f"Drive confirmation page leading to {action}", "refused before fetching; nothing cached")


def _announces_too_much(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", str(10**13))
    handler.end_headers()
    handler.wfile.write(b"\0" * 1024)


def _never_ends(handler):
    handler.send_response(200)
    handler.end_headers()
    while True:
        handler.wfile.write(b"\0" * 65536)


@pytest.mark.parametrize("respond, message, case, outcome", [
    (_announces_too_much, "announces", "download announcing Content-Length 10^13", "refused before the body"),
    (_never_ends, "sent more than", "download whose body never ends (no Content-Length)", "stopped at the bound"),
])
def test_downloads_are_bounded(hosts, monkeypatch, respond, message, case, outcome):
    monkeypatch.setattr(pretrained, "MAX_DOWNLOAD_BYTES", 4 * 2**20)  # the bound, made small to test quickly
    hosts.custom["/mirror/SwiftFormer_XS.pth"] = respond
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", hosts.url + "/mirror/")
    with pytest.raises(WeightsDownloadError, match=message):
        pretrained.fetch_checkpoint("XS", "imagenet", timeout=5)
    assert _cache_is_clean()
    record(case, f"{outcome}; nothing left")


def test_imagenet_weights_with_a_ten_class_head(tmp_path, monkeypatch):
    spec = VARIANTS["XS"]
    reference = build_reference(spec["depths"], spec["widths"], classes=10, seed=2)
    _save(tmp_path / "SwiftFormer_XS.pth", {"model": official_state_dict(reference)})
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsDownloadError, match="10 classes; ImageNet-1k weights have 1000"):
        keras_swiftformer.SwiftFormerXS(weights="imagenet")
    assert _cache_is_clean()
    record("real XS checkpoint with a 10-class head served as imagenet", "WeightsDownloadError; nothing cached")


def test_huge_view_served_as_imagenet(tmp_path, monkeypatch, tiny_state):
    state = dict(tiny_state, **{"head.weight": torch.zeros(1, 32).expand(3_000_000, 32)})
    _save(tmp_path / "SwiftFormer_XS.pth", {"model": state})
    monkeypatch.setenv("KERAS_SWIFTFORMER_MIRROR", str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsDownloadError, match="claims shape"):
        pretrained.fetch_checkpoint("XS", "imagenet")
    assert _cache_is_clean()
    record("zero-stride 3,000,000-class view served as imagenet (mirror)", "WeightsDownloadError; nothing cached")


# --- images ---------------------------------------------------------------------------------

GRADIENT = np.tile(np.linspace(0, 255, 96), (64, 1))  # 64 x 96, mean 127.5


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "1"])
def test_every_pillow_mode_loads_as_the_same_picture(tmp_path, mode):
    Image = PIL_Image
    gray = Image.fromarray(GRADIENT.astype("uint8"), "L")
    if mode == "I;16":
        image, suffix = Image.fromarray((GRADIENT * 257).astype("uint16")), ".png"  # opens as I;16
    elif mode == "I":
        image, suffix = Image.fromarray((GRADIENT * 257).astype("int32"), "I"), ".tif"
    elif mode == "F":
        image, suffix = Image.fromarray((GRADIENT / 255).astype("float32"), "F"), ".tif"
    elif mode == "P":
        image, suffix = gray.convert("P"), ".png"
        image.info["transparency"] = 0
    elif mode == "1":
        image, suffix = gray.convert("1"), ".png"
    else:
        image, suffix = gray.convert(mode), (".jpg" if mode == "CMYK" else ".png")
    path = tmp_path / f"image{suffix}"
    image.save(path)
    pixels = load_image(str(path), 64, normalize=False)
    expected = load_image(np.repeat(GRADIENT.astype("uint8")[..., None], 3, -1), 64, normalize=False)
    tolerance = 40 if mode == "1" else 3  # dithering to black and white moves pixels, not the mean
    assert pixels.shape == (64, 64, 3) and abs(pixels.mean() - expected.mean()) < tolerance, (mode, pixels.mean())
    record(f"{mode} image", f"loads as the same picture (mean {pixels.mean():.1f} vs {expected.mean():.1f})")


def test_extreme_aspect_ratio_stays_small(tmp_path):
    path = tmp_path / "strip.png"
    PIL_Image.fromarray(np.full((1, 20000, 3), 200, "uint8")).save(path)
    peak, said = _peak_rss_mb(f"print(load_image({str(path)!r}).shape)")
    assert said == "ok" and peak < 200
    record("1 x 20000 PNG", f"loads at 224x224, peak +{peak:.0f} MB")


def test_decompression_bomb(tmp_path, capsys):
    path = tmp_path / "bomb.png"
    PIL_Image.new("1", (20000, 20000)).save(path)  # 400 megapixels in a few KB
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match="decompression bomb"):
        load_image(str(path))
    assert swiftformer(["predict", str(path), "--model", "XS", "--weights", "none"]) == 1
    assert "decompression bomb" in capsys.readouterr().err
    record("PNG of 20000 x 20000 pixels in a few KB", "ValueError; predict exits 1 with one line")


@pytest.mark.parametrize("case, content", [
    ("truncated JPEG", None),
    ("text renamed .png", b"not an image at all"),
])
def test_unreadable_images(tmp_path, case, content):
    path = tmp_path / ("x.jpg" if content is None else "x.png")
    if content is None:
        buffer = io.BytesIO()
        PIL_Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype="uint8")).save(buffer, "JPEG")
        content = buffer.getvalue()[:600]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="Could not read"):
        load_image(str(path))
    record(case, "ValueError naming the file")


# --- training folders -----------------------------------------------------------------------

def test_messy_training_folder(tmp_path):
    from keras_swiftformer.training.data import folder_datasets

    root = digits_folder(str(tmp_path / "digits"), per_class=3)
    jpeg = io.BytesIO()
    PIL_Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype="uint8")).save(jpeg, "JPEG")
    (tmp_path / "digits" / "digit_1" / "truncated.jpg").write_bytes(jpeg.getvalue()[:700])
    PIL_Image.new("RGB", (8, 8)).save(tmp_path / "digits" / "digit_2" / "tiff.png", "TIFF")
    os.symlink(root, os.path.join(root, "zz_everything"))  # a class folder linking back to the root
    os.symlink(".", os.path.join(root, "digit_4", "loop"))  # a link loop inside a class
    os.makedirs(os.path.join(root, "empty_class"))  # a class folder with no image
    with open(os.path.join(root.encode(), b"digit_5", b"caf\xe9.png"), "wb") as file:  # Latin-1 name
        file.write((tmp_path / "digits" / "digit_5" / sorted(os.listdir(tmp_path / "digits" / "digit_5"))[0]).read_bytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train, val = folder_datasets(root, validation_split=0.2)
    said = " ".join(str(w.message) for w in caught)
    assert train.class_names == [f"digit_{i}" for i in range(10)]  # the link back is not a class
    assert train.size + val.size == 30  # 3 per class, nothing twice, no broken file
    assert "truncated.jpg" in said and "tiff.png" in said and "zz_everything" in said and "udce9.png" in said
    assert "empty_class" in said
    record("training folder: truncated JPEG, TIFF named .png, link to the root, link loop, Latin-1 name, empty class",
           "each skipped with a warning naming it; 30 images, 10 classes")


def test_truncated_segmentation_image(tmp_path):
    from keras_swiftformer.training.data import DatasetError
    from keras_swiftformer.training.segmentation_data import folder_segmentation_datasets

    for sub in ("images", "masks"):
        os.makedirs(tmp_path / "seg" / sub)
    for index in range(4):
        PIL_Image.fromarray(np.full((32, 32, 3), 9 * index, "uint8")).save(tmp_path / "seg" / "images" / f"{index}.jpg")
        PIL_Image.fromarray(np.full((32, 32), index % 2, "uint8")).save(tmp_path / "seg" / "masks" / f"{index}.png")
    content = (tmp_path / "seg" / "images" / "2.jpg").read_bytes()
    (tmp_path / "seg" / "images" / "2.jpg").write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match="2.jpg.*cannot be decoded"):
        folder_segmentation_datasets(str(tmp_path / "seg"), validation_split=0.25)
    record("segmentation pair with a truncated JPEG", "DatasetError naming the file, before training")


def test_resume_with_other_settings(tmp_path):
    import keras

    from training.finetune import finetune

    root = digits_folder(str(tmp_path / "digits"), per_class=2)
    original = keras.callbacks.BackupAndRestore.on_epoch_end

    def killed(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    arguments = dict(weights=None, dataset=root, epochs=2, batch_size=8, output=str(tmp_path / "run"), verbose=0,
                     validation_split=0.2)
    keras.callbacks.BackupAndRestore.on_epoch_end = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            finetune("XS", image_size=32, **arguments)
    finally:
        keras.callbacks.BackupAndRestore.on_epoch_end = original
    with pytest.raises(ValueError, match="image_size: 32 then, 64 now"):
        finetune("XS", image_size=64, resume=True, **arguments)
    with pytest.raises(ValueError, match="model: 'XS' then, 'S' now"):
        finetune("S", image_size=32, resume=True, **arguments)
    record("--resume with another --image-size / --model", "ValueError naming what differs")


# --- outputs and constructors ---------------------------------------------------------------

def test_export_to_a_folder_and_bad_constructor_values(tmp_path, capsys):
    (tmp_path / "out.tflite").mkdir()
    with pytest.raises(SystemExit) as usage:  # before any work: a usage error naming -o
        swiftformer(["export", "--model", "XS", "--weights", "none", "--image-size", "32",
                     "-o", str(tmp_path / "out.tflite")])
    assert usage.value.code == 2 and "is a folder" in capsys.readouterr().err
    # Random weights export (a deployment test needs no download), but are said to be random.
    assert swiftformer(["export", "--model", "XS", "--weights", "none", "--image-size", "32",
                        "-o", str(tmp_path / "random.tflite")]) == 0
    assert "--weights none builds the model with random weights: the file is for testing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="positive integer"):
        keras_swiftformer.SwiftFormerXS(classes=2.7)
    with pytest.raises(ValueError, match="finite"):
        keras_swiftformer.layers.LayerScale(float("nan"))
    record("export -o to an existing folder; export --weights none; classes=2.7; LayerScale(nan)",
           "one-line error / a random-weights warning / ValueError")
