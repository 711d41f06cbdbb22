"""The dashboard in a real browser: headless Chromium (Debian's, by explicit path; nothing is
downloaded) over a database filled by a demo run, from the bounty list to the job to a
contribution's proof page, each value checked against the chain. Screenshots are saved under
test-artifacts/ for a person to look at."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from eth_typing import HexStr
from rich.console import Console

from marketplace_api.app import create_app
from marketplace_api.db import make_engine, make_session_factory
from marketplace_api.testing import free_port, has_chromium
from opentrain.chain.client import Chain
from opentrain.chain.views import contribution_info, job_info, verification_info
from opentrain.cli.demo import DemoResult, run_demo
from opentrain.content.embedded import EmbeddedStore
from opentrain.protocol import presets as spec_module
from opentrain.protocol.sampling import sample_indices

if TYPE_CHECKING:
    from playwright.sync_api import Page

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright (Python package) is not installed"
)
CHROMIUM = has_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: apt-get install -y chromium"
)
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


@dataclass
class Served:
    demo: DemoResult
    chain: Chain
    base_url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A one-round demo run, indexed by the demo itself, served by uvicorn on 127.0.0.1."""
    home = tmp_path_factory.mktemp("demo")
    make_spec = getattr(spec_module, "mlp_demo_spec", spec_module.default_demo_spec)
    demo = run_demo(home, make_spec(rounds=1, slots_per_round=1), Console(quiet=True))
    assert demo.chain is not None and demo.database_url
    factory = make_session_factory(make_engine(demo.database_url))
    app = create_app(session_factory=factory, store=EmbeddedStore(home / "store"))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Served(demo, demo.chain, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_page(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Page]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def _hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def test_bounty_list_to_job_to_proof_matches_the_chain(served: Served, browser_page: Page) -> None:
    page, chain, demo = browser_page, served.chain, served.demo
    page.goto(served.base_url + "/")
    assert page.title().startswith("Open bounties")
    job_link = page.locator(f'a[href="/ui/jobs/{demo.job_id}"]').first
    assert job_link.is_visible()
    _shot(page, "1-bounties")

    job_link.click()
    page.wait_for_url(f"**/ui/jobs/{demo.job_id}")
    info = job_info(chain, demo.job_id)
    assert page.get_by_test_id("job-sponsor").inner_text() == info.sponsor
    assert page.get_by_test_id("job-escrow").get_attribute("data-value") == str(info.escrow)
    assert page.get_by_test_id("job-current-round").inner_text() == str(info.current_round)
    assert page.get_by_test_id("job-model-digest").inner_text() == _hex(info.current_model_digest)
    assert page.get_by_test_id("job-spec-digest").inner_text() == _hex(info.params.spec_digest)
    assert page.get_by_test_id("job-model").inner_text() == "mlp"  # spec read from the store
    # The loss curve: one point per aggregated round, at the loss the chain recorded.
    events = chain.market.events.RoundAggregated().get_logs(
        from_block=chain.deployment.block, argument_filters={"jobId": demo.job_id}
    )
    on_chain = {int(e["args"]["round"]): int(e["args"]["validationLossMicro"]) for e in events}
    assert on_chain and len(on_chain) == info.current_round
    curve = page.get_by_test_id("loss-curve").locator("svg")
    assert curve.get_attribute("data-points") == str(len(on_chain))
    shown = page.get_by_test_id("round-loss")
    assert shown.count() == info.params.rounds
    for round_, micro in on_chain.items():
        assert shown.nth(round_).get_attribute("data-value") == str(micro)
        point = curve.locator(f'circle[data-round="{round_}"]')
        assert float(point.get_attribute("data-loss") or "nan") == pytest.approx(micro / 1e6)
    _shot(page, "2-job")

    contribution_id = demo.contributions[0][0]
    page.locator(f'a[href="/ui/contributions/{contribution_id}"]').first.click()
    page.wait_for_url(f"**/ui/contributions/{contribution_id}")
    c = contribution_info(chain, contribution_id)
    v = verification_info(chain, contribution_id)
    assert page.get_by_test_id("contribution-node").inner_text() == c.node
    assert page.get_by_test_id("output-digest").inner_text() == _hex(c.output_digest)
    assert page.get_by_test_id("output-cid").inner_text() == c.output_cid
    assert page.get_by_test_id("trace-root").inner_text() == _hex(c.trace_root)
    assert page.get_by_test_id("manifest-cid").inner_text() == c.manifest_cid
    assert page.get_by_test_id("seed").inner_text() == _hex(v.seed)
    assert page.get_by_test_id("verifier").inner_text() == v.verifier
    sampled = sample_indices(v.seed, info.params.num_segments, info.params.sample_count)
    assert (
        page.get_by_test_id("sampled-segments")
        .inner_text()
        .startswith(", ".join(map(str, sampled)))
    )
    assert sampled == [int(s) for s in demo.contributions[0][3].split(",")]  # what was re-run
    assert page.get_by_test_id("verdict").inner_text() == demo.contributions[0][4]
    assert page.get_by_test_id("audit-command").inner_text() == (
        f"opentrain audit contribution {contribution_id}"
    )
    for tx_cell in page.get_by_test_id("event-tx").all():  # every transaction is on chain
        receipt = chain.w3.eth.get_transaction_receipt(HexStr(tx_cell.inner_text()))
        assert receipt["status"] == 1
    _shot(page, "3-proof")

    page.locator(f'a[href="/ui/nodes/{c.node}"]').first.click()
    page.wait_for_url(f"**/ui/nodes/{c.node}")
    earned = page.get_by_test_id("node-earnings").get_attribute("data-value")
    assert earned == str(info.params.reward_per_slot)  # one accepted slot in the one round
    _shot(page, "4-node")
    page.goto(served.base_url + "/ui/leaderboard")
    assert page.locator(f'a[href="/ui/nodes/{c.node}"]').count() == 1
    _shot(page, "5-leaderboard")
