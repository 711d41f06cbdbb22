"""Copy the ABI and bytecode of the deployable contracts from Hardhat's build output into the
Python package, so `pip install opentrain` users never need Node.js.

    python scripts/export_artifacts.py          # write opentrain/chain/artifacts/*.json
    python scripts/export_artifacts.py --check  # fail if the committed files differ
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "artifacts" / "contracts"
TARGET = ROOT / "opentrain" / "chain" / "artifacts"
CONTRACTS = ["TrainToken", "StakeRegistry", "JobMarket", "Settlement", "Disputes", "Canaries"]


def exported(name: str) -> str:
    """The committed form of one contract: name, ABI and creation bytecode, stable JSON."""
    build = json.loads((BUILD / f"{name}.sol" / f"{name}.json").read_text())
    doc = {"contractName": name, "abi": build["abi"], "bytecode": build["bytecode"]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    drift = []
    for name in CONTRACTS:
        text = exported(name)
        path = TARGET / f"{name}.json"
        if check:
            if not path.exists() or path.read_text() != text:
                drift.append(name)
        else:
            path.write_text(text)
    if drift:
        print(
            "contract artifacts drifted from contracts/: "
            + ", ".join(drift)
            + " (run `make contracts` and commit opentrain/chain/artifacts)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
