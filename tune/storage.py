"""Where experiments live: a local (or NFS) folder, or a cloud URI (s3://bucket/prefix, gs://bucket/prefix).

URIs go through pyarrow's file systems, the storage layer Ray Tune itself uses (`storage_path` +
`storage_filesystem`). S3 credentials, region and endpoint come from the standard AWS environment variables
and files (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ~/.aws/...); an
S3-compatible server (MinIO, moto, Ceph) is reached with `--storage-endpoint http://host:port`, which sets
AWS_ENDPOINT_URL for this process and for the Ray workers it starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from dmvae.errors import UserError

SCHEMES = ("s3", "gs", "gcs")
ENDPOINT_ENV = "AWS_ENDPOINT_URL"
OPTUNA_FILE = "optuna.db"  # the default Optuna storage: SQLite in the experiment folder


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def set_endpoint(endpoint: str | None) -> None:
    """`--storage-endpoint`: the S3 endpoint of this process (and of local Ray workers, which inherit it)."""
    if endpoint:
        if not endpoint.startswith(("http://", "https://")):
            raise UserError(f"--storage-endpoint must be an http:// or https:// URL, got {endpoint!r}")
        os.environ[ENDPOINT_ENV] = endpoint


def check_uri(uri: str) -> str:
    scheme = uri.split("://", 1)[0]
    if scheme not in SCHEMES:
        raise UserError(f"storage URIs must be s3://bucket/prefix or gs://bucket/prefix, got {uri!r}")
    if not uri.split("://", 1)[1].strip("/"):
        raise UserError(f"storage URI {uri!r} names no bucket")
    return uri.rstrip("/")


def filesystem(uri: str):
    """(pyarrow file system, path inside it) of a URI; an unusable URI is a one-line UserError."""
    import pyarrow.fs

    check_uri(uri)
    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as error:  # noqa: BLE001 - pyarrow raises ArrowInvalid/OSError with long messages
        raise UserError(f"cannot open storage {uri}: {_first_line(error)}") from None


def join(location: str | Path, *names: str) -> str | Path:
    if is_uri(location):
        return "/".join([str(location).rstrip("/"), *names])
    return Path(location).joinpath(*names)


def parent_and_name(location: str | Path) -> tuple[str | Path, str]:
    if is_uri(location):
        parent, _, name = str(location).rstrip("/").rpartition("/")
        return parent, name
    return Path(location).parent, Path(location).name


def exists(location: str | Path) -> bool:
    if not is_uri(location):
        return Path(location).exists()
    import pyarrow.fs

    fs, path = filesystem(str(location))
    return _call(location, lambda: fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound)


def is_file(location: str | Path) -> bool:
    if not is_uri(location):
        return Path(location).is_file()
    import pyarrow.fs

    fs, path = filesystem(str(location))
    return _call(location, lambda: fs.get_file_info(path).type == pyarrow.fs.FileType.File)


def read_text(location: str | Path) -> str:
    if not is_uri(location):
        return Path(location).read_text()
    fs, path = filesystem(str(location))

    def read() -> str:
        with fs.open_input_stream(path) as stream:
            return stream.read().decode()

    return _call(location, read)


def write_text(location: str | Path, text: str) -> None:
    if not is_uri(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        Path(location).write_text(text)
        return
    fs, path = filesystem(str(location))

    def write() -> None:
        with fs.open_output_stream(path) as stream:
            stream.write(text.encode())

    _call(location, write)


def upload(local: str | Path, uri: str) -> None:
    """Copy a local folder (recursively) to a URI folder, overwriting what is there."""
    import pyarrow.fs

    fs, path = filesystem(uri)
    _call(uri, lambda: pyarrow.fs.copy_files(str(local), path, destination_filesystem=fs))


def download(uri: str, local: str | Path) -> bool:
    """Copy a URI folder down to a local folder; False when there is nothing at the URI."""
    import pyarrow.fs

    fs, path = filesystem(uri)
    if _call(uri, lambda: fs.get_file_info(path).type) == pyarrow.fs.FileType.NotFound:
        return False
    Path(local).mkdir(parents=True, exist_ok=True)
    _call(uri, lambda: pyarrow.fs.copy_files(path, str(local), source_filesystem=fs))
    return True


def _call(location, action):
    try:
        return action()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise UserError(f"storage {location}: {_first_line(error)}") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def folder_storage(url: str, folder: Path | str) -> str:
    """The Optuna storage of an experiment folder that may have been moved or copied since it was made: the
    default SQLite file is recorded with the folder's path of then, and the one to use is the folder's own."""
    prefix = "sqlite:///"
    if is_uri(folder) or not url.startswith(prefix):
        return url
    recorded, here = Path(url[len(prefix) :]), Path(folder) / OPTUNA_FILE
    if recorded.name == OPTUNA_FILE and recorded != here and here.is_file():
        return f"{prefix}{here}"
    return url
