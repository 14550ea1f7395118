"""Environment faults found inside library errors."""

from __future__ import annotations

import errno

from freqforensics.files import faults


def test_environment_faults_are_found_inside_library_errors():
  e = RuntimeError("write() failed: No space left on device; writing /data/out/chunk.tmp1; at byte 9")
  fault = faults.environment_fault(e)
  assert fault.errno == errno.ENOSPC and fault.filename == "/data/out/chunk.tmp1"
  assert "no space left" in faults.describe_os_error(fault) and "/data/out/chunk.tmp1" in faults.describe_os_error(
    fault
  )
  wrapped = ValueError("could not save")
  wrapped.__cause__ = PermissionError(errno.EACCES, "Permission denied", "/ro/x")
  assert faults.environment_fault(wrapped).errno == errno.EACCES
  assert faults.environment_fault(KeyError("model")) is None
