#!/usr/bin/env python3
"""Record a test stage as a one-case JUnit file, or sum up every JUnit file of a run.

  junit_stage.py FILE NAME EXIT_CODE SECONDS   write FILE
  junit_stage.py --summary DIR                 print "N passed, N failed" (exit 1 if any failed)
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def write(path: str, name: str, rc: int, seconds: str) -> None:
    suite = ET.Element("testsuite", name="stages", tests="1", failures="0" if rc == 0 else "1")
    case = ET.SubElement(suite, "testcase", classname="stage", name=name, time=seconds)
    if rc != 0:
        ET.SubElement(case, "failure", message=f"{name} exited {rc}")
    ET.ElementTree(suite).write(path)


def summary(directory: str) -> int:
    passed = failed = skipped = 0
    for path in sorted(Path(directory).glob("*.xml")):
        for case in ET.parse(path).getroot().iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                print(f"FAILED {path.stem}: {case.get('classname')}::{case.get('name')}")
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    tail = f", {skipped} skipped" if skipped else ""
    print(f"{passed} passed, {failed} failed{tail}")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--summary"]:
        sys.exit(summary(sys.argv[2]))
    write(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
