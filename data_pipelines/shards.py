"""TFRecord shards on disk: CRC scanning, telling a non-TFRecord file from a damaged shard, listing a glob.

The record framing of TFRecord files (length, masked CRC-32C of the length, data, masked CRC-32C of the
data) is checked here through `tf.io.gfile` (local disks and cloud storage alike) without decoding any
payload, so a corrupt or truncated shard is named before tf.data fails on it,
and a file that is not a TFRecord at all (a manifest, a README matched by a glob) is named as such.
`list_shards` leaves the atomic writer's temporary files and prepare_data's sidecars out of every glob.
"""

import logging
import os
import struct
from typing import List, Optional, Tuple

import tensorflow as tf

from data_pipelines.io_utils import TMP_PREFIX

def _crc32c_table():
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_CRC_TABLE = _crc32c_table()


def _masked_crc32c(data: bytes) -> int:
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def scan_tfrecord(path: str, verify_data: bool = False) -> Tuple[int, Optional[str]]:
  """Checks a TFRecord file's framing (record lengths, their CRCs, file size) without reading payloads.

  Args:
    path: the TFRecord file (local or tf.io.gfile URL).
    verify_data: also read every record through TensorFlow (payload CRCs), which costs a full read.

  Returns:
    (number of records, None) for a sound file, or (records read, reason) for a corrupt one.
  """
  size = tf.io.gfile.stat(path).length
  count, offset = 0, 0
  with tf.io.gfile.GFile(path, 'rb') as f:
    while offset < size:
      header = f.read(12)
      if len(header) < 12:
        return count, f'truncated record header at byte {offset}'
      length, crc = struct.unpack('<QI', header)
      if _masked_crc32c(header[:8]) != crc:
        return count, f'corrupted record length at byte {offset}'
      offset += 12 + length + 4
      if offset > size:
        return count, f'truncated record at byte {offset - length - 16} (needs {length} bytes)'
      f.seek(offset)
      count += 1
  if verify_data:
    try:
      for _ in tf.data.TFRecordDataset(path):
        pass
    except tf.errors.DataLossError as e:
      return count, f'corrupted record data: {e.message.splitlines()[-1]}'
  return count, None


class CorruptShardError(ValueError):
  """A TFRecord shard whose framing or data is damaged (truncated, flipped bytes)."""


class NotATFRecordError(ValueError):
  """A file matched as a shard that is no TFRecord file at all (a JSON manifest, a README, a folder)."""


def not_a_tfrecord(path: str) -> Optional[str]:
  """Why `path` is not a TFRecord file at all, or None when it starts like one (or is empty: no records).

  A TFRecord file starts with a record header (8-byte length + its masked CRC32C); a file whose first
  header's CRC does not match is some other file, which a corrupt shard is not: shards are written whole
  and renamed, so damage (truncation, flipped bytes) leaves the first header intact.
  """
  if tf.io.gfile.isdir(path):
    return 'it is a folder'
  size = tf.io.gfile.stat(path).length
  if size == 0:
    return None
  with tf.io.gfile.GFile(path, 'rb') as f:
    head = f.read(12)
  text = all(32 <= b < 127 or b in b'\t\n\r' for b in head)  # a record length has zero high bytes
  if len(head) < 12:  # a few bytes: text is some other file; anything else, a shard truncated at its start
    return f'{size} bytes of text, fewer than one record header' if text else None
  if _masked_crc32c(head[:8]) == struct.unpack('<I', head[8:])[0]:
    return None
  looks = ', like JSON' if head.lstrip()[:1] in (b'{', b'[') else ', like text' if text else ''
  start = head.decode('ascii') if text else head.hex()
  return f'its first bytes {start!r} are no record header{looks}'


# prepare_data's per-shard manifests of the first output layout sat beside the shards as
# '<shard>.tfrecord.manifest.json', where shard globs ('train-*', '*.tfrecord*') match them.
OLD_SIDECAR_SUFFIX = '.tfrecord.manifest.json'


def list_shards(file_pattern) -> List[str]:
  """The sorted files `file_pattern` (a glob, or a list of globs / files) matches, as shards to read.

  Left out, with a logged warning: the first output layout's per-shard '*.tfrecord.manifest.json'
  files (reading such folders goes on; `prepare_data --overwrite` rewrites them in the current layout)
  and atomic writers' temporaries ('.tmp-*').

  Raises:
    ValueError: nothing matches.
    NotATFRecordError: a matched file is not a TFRecord file (names it and says to narrow the glob).
  """
  patterns = [file_pattern] if isinstance(file_pattern, (str, os.PathLike)) else list(file_pattern)
  files = sorted({f for p in patterns for f in tf.io.gfile.glob(os.fspath(p))})
  left_out = [f for f in files if f.endswith(OLD_SIDECAR_SUFFIX) or os.path.basename(f).startswith(TMP_PREFIX)]
  if left_out:
    logging.warning('left out %d file(s) matching %r that are not shards (prepare_data\'s per-shard manifests '
                    'of the first layout, or temporaries), e.g. %s; rerun prepare_data with --overwrite to '
                    'move the manifests out of the shard globs', len(left_out), file_pattern, left_out[0])
    files = [f for f in files if f not in set(left_out)]
  if not files:
    raise ValueError(f'No file matches file_pattern. Received: file_pattern={file_pattern!r}')
  for path in files:
    reason = not_a_tfrecord(path)
    if reason is not None:
      raise NotATFRecordError(f'{path} is not a TFRecord file ({reason}): the file pattern {file_pattern!r} '
                              'matches more than shards; narrow it, e.g. to <dir>/<subset>-*.tfrecord')
  return files


def check_files(files: List[str], skip_corrupt: bool = False, verify_data: bool = False):
  """Checks the framing of every shard (`scan_tfrecord`).

  Args:
    files: the shard paths.
    skip_corrupt: leave corrupt shards out (logged) instead of raising.
    verify_data: also check every payload CRC (one full read of the data).

  Returns:
    (good files, [(file, reason)] of the skipped corrupt ones, number of records in the good files).

  Raises:
    CorruptShardError: a corrupt shard (names it), unless `skip_corrupt`.
    NotATFRecordError: a file that is not a TFRecord file.

  A file that is not a TFRecord at all raises NotATFRecordError whatever `skip_corrupt` says: that is a
  glob matching the wrong files, not damaged data.
  """
  good, bad, records = [], [], 0
  for path in files:
    reason = not_a_tfrecord(path)
    if reason is not None:
      raise NotATFRecordError(f'{path} is not a TFRecord file ({reason}), not a corrupt shard: pass only '
                              'TFRecord shards, e.g. the glob <dir>/<subset>-*.tfrecord')
    count, reason = scan_tfrecord(path, verify_data)
    if reason is None:
      good.append(path)
      records += count
    elif skip_corrupt:
      bad.append((path, reason))
    else:
      raise CorruptShardError(f'corrupt TFRecord shard {path}: {reason}')
  if bad:
    logging.warning('skipped %d corrupt shard(s) of %d: %s', len(bad), len(files),
                    '; '.join(f'{p}: {r}' for p, r in bad))
  return good, bad, records
