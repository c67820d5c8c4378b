"""Opens and reads local files the way input files must be read: bounded.

A glob or a folder can match anything: a FIFO (opening it waits for a writer
that never comes), a device (/dev/zero never ends), a broken symlink, a file
larger than any image could be. Here only regular files are read, the open
never blocks, and at most a stated number of bytes is read, so a bad entry
costs one `FileRefused` and no time.

Example:

    data = bounded_read.read_file("photo.jpg", max_bytes=64 << 20)
"""

import errno
import os
import stat

#: Why a file was refused, as `FileRefused.reason`.
REASONS = ("missing", "broken_symlink", "not_a_regular_file", "too_large")


class FileRefused(OSError):
  """A path that is not a readable regular file, or is too large.

  An OSError, so callers that already report unreadable files report these
  too; `reason` is one of REASONS.
  """

  def __init__(self, reason, path, detail):
    super().__init__(f"{path}: {detail}")
    self.reason = reason
    self.detail = detail


def _kind(mode):
  for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                     (stat.S_ISCHR, "a character device"),
                     (stat.S_ISBLK, "a block device"),
                     (stat.S_ISSOCK, "a socket")):
    if test(mode):
      return name
  return "not a regular file"


def _refuse_irregular(path, mode):
  if not stat.S_ISREG(mode):
    raise FileRefused("not_a_regular_file", path,
                      f"is {_kind(mode)}, not a regular file: only regular "
                      "files are read; remove it from the input")


def open_regular(path):
  """Opens a regular file for binary reading without ever blocking.

  Raises:
    FileRefused: the path does not exist, is a broken symlink, or is not a
      regular file (FIFO, device, socket, folder).
    OSError: any other failure to open (permissions, I/O).
  """
  try:
    # stat before open: opening some devices has effects (a tape rewinds).
    _refuse_irregular(path, os.stat(path).st_mode)
    # O_NONBLOCK: a FIFO swapped in after the stat must not block the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
  except FileNotFoundError:
    if os.path.islink(path):
      raise FileRefused("broken_symlink", path,
                        f"is a symlink to {os.readlink(path)!r}, which does "
                        "not exist") from None
    raise FileRefused("missing", path, "does not exist") from None
  except OSError as error:
    if error.errno == errno.ELOOP:
      raise FileRefused("broken_symlink", path,
                        "is a symlink loop") from None
    raise
  try:
    _refuse_irregular(path, os.fstat(fd).st_mode)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
  except BaseException:
    os.close(fd)
    raise


def read_file(path, max_bytes):
  """The bytes of the regular file `path`, at most `max_bytes` of them.

  Raises:
    FileRefused: as `open_regular`, or the file holds more than `max_bytes`
      (checked before reading), or it grows while it is read.
    OSError: any other failure to read.
  """
  with open_regular(path) as f:
    size = os.fstat(f.fileno()).st_size
    if size > max_bytes:
      raise FileRefused("too_large", path,
                        f"holds {size} bytes, over the limit of {max_bytes}: "
                        "no accepted input is that large")
    data = f.read(size)
    if f.read(1):
      raise FileRefused("too_large", path,
                        f"grew past its size of {size} bytes while being "
                        "read: read it again once it is complete")
  return data
