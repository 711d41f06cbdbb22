"""A local market's state on disk: its home, accounts and keystores per role, ports, the JSON
state file, and the small process and RPC helpers the launcher needs.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentrain.cli.errors import fail

STATE = "market.json"
TOKEN_FUNDING = 1_000.0
STAKE = 200.0


DEFAULT_HOME = Path(".opentrain-market")


# -- helpers -------------------------------------------------------------------------------------


def opentrain_command() -> list[str]:
    """How to run ``opentrain`` as a child: the script beside this interpreter, else -m."""
    script = Path(sys.executable).parent / "opentrain"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "opentrain.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 10.0) -> Any:
    """One JSON-RPC call without web3 (the supervisor stays light)."""
    import urllib.request

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error'].get('message', answer['error'])}")
    return answer["result"]


def hardhat_paths() -> tuple[Path, Path] | None:
    """(hardhat executable, project folder with hardhat.config.js), when installed."""
    import opentrain

    for root in (Path(opentrain.__file__).resolve().parent.parent, Path.cwd()):
        hardhat = root / "node_modules" / ".bin" / "hardhat"
        if hardhat.exists() and (root / "hardhat.config.js").exists():
            return hardhat, root
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_state(home: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((home / STATE).read_text())
        return data
    except FileNotFoundError:
        return {}
    except ValueError:
        fail(f"{home / STATE} is not valid JSON")


def save_state(home: Path, state: dict[str, Any]) -> None:
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{STATE}.tmp"
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(home / STATE)


# -- accounts ------------------------------------------------------------------------------------


@dataclass
class Role:
    """One party of the market: its home, its keystore and the password that unlocks it."""

    name: str
    home: Path

    @property
    def keystore(self) -> Path:
        return self.home / "keystore.json"

    @property
    def password_file(self) -> Path:
        return self.home / "keystore.password"

    @property
    def address(self) -> str:
        """The keystore's address (keystores name it in lowercase hex without 0x)."""
        return "0x" + str(json.loads(self.keystore.read_text())["address"])

    def ensure_key(self) -> str:
        """Create this role's encrypted keystore on first use; returns its address."""
        if self.keystore.exists():
            return self.address
        from opentrain.chain.keys import create_keystore

        self.home.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(18)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)
        return create_keystore(self.keystore, password)


@dataclass
class Market:
    """Where everything of one market lives, and the environment each process gets."""

    home: Path
    rpc_url: str
    api_port: int
    gateway_port: int
    nodes: int
    verifiers: int
    extra_env: dict[str, str] = field(default_factory=dict)
    # `chain deploy` options of a new deployment (the windows, in seconds of block time)
    deploy_options: list[str] = field(default_factory=list)

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def deployment_file(self) -> Path:
        return self.home / "deployment.json"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{(self.home / 'api' / 'opentrain.db').resolve()}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def role(self, name: str) -> Role:
        return Role(name, (self.home / name).resolve())

    def roles(self) -> list[Role]:
        names = ["sponsor"]
        names += [f"node-{i + 1}" for i in range(self.nodes)]
        names += [f"verifier-{i + 1}" for i in range(self.verifiers)]
        return [self.role(n) for n in names]

    def env(self, role: Role | None = None) -> dict[str, str]:
        """The OPENTRAIN_* settings of one process (``role``: its home and keystore)."""
        env = {
            "OPENTRAIN_RPC_URL": self.rpc_url,
            "OPENTRAIN_DEPLOYMENT_FILE": str(self.deployment_file.resolve()),
            "OPENTRAIN_STORE_DIR": str(self.store_dir.resolve()),
            "OPENTRAIN_DATABASE_URL": self.database_url,
            "OPENTRAIN_API_URL": self.api_url,
            "OPENTRAIN_HOME": str((self.home / "deployer").resolve()),
        }
        if role is not None:
            env["OPENTRAIN_HOME"] = str(role.home)
            env["OPENTRAIN_KEYSTORE"] = str(role.keystore)
            if role.password_file.exists():
                env["OPENTRAIN_KEYSTORE_PASSWORD"] = role.password_file.read_text().strip()
        return env
