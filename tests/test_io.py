"""The one atomic writer: complete files or none, with the permissions of a normal file."""

import os
import stat

import pytest

from keras_swiftformer.io import atomic_path, write_bytes, write_json

pytestmark = pytest.mark.any_backend(runs_on="torch")


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_get_the_umask_permissions_not_those_of_a_temporary_file(tmp_path):
    previous = os.umask(0o022)
    try:
        write_bytes(tmp_path / "a.tflite", b"content")
        write_json(tmp_path / "b.json", {"x": 1})
        os.umask(0o077)
        write_bytes(tmp_path / "private.bin", b"content")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "a.tflite") == 0o644 and _mode(tmp_path / "b.json") == 0o644
    assert _mode(tmp_path / "private.bin") == 0o600
    assert (tmp_path / "a.tflite").read_bytes() == b"content"


def test_a_failed_write_leaves_the_previous_file_and_no_partial_one(tmp_path):
    target = tmp_path / "model.weights.h5"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            assert temporary.endswith(".weights.h5") and os.path.dirname(temporary) == str(tmp_path)
            with open(temporary, "wb") as file:
                file.write(b"half")
            raise RuntimeError("killed while writing")
    assert target.read_bytes() == b"previous" and os.listdir(tmp_path) == ["model.weights.h5"]


def test_a_folder_is_not_a_file_to_write(tmp_path):
    (tmp_path / "out.tflite").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        write_bytes(tmp_path / "out.tflite", b"x")
