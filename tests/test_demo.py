"""`gateway demo --check` replays Family A and fails when an expected outcome does not hold."""

from gateway.cli import main
from gateway.demo import check, run_demo


def test_demo_check_passes_on_the_bundled_scenario(runner):
    result = runner.invoke(main, ["demo", "--check"])
    assert result.exit_code == 0, result.output
    assert "Mia Rose Parker" in result.output and "Leo Parker" in result.output
    assert "every expected outcome holds" in result.output


def test_check_reports_a_missing_ppn_message():
    results = run_demo(echo=lambda *a, **k: None)
    summary, ppns = results["dorset-police-ppn.xml"]
    results["dorset-police-ppn.xml"] = (summary, ppns[:1])
    assert any("expected 2 PPN referrals" in f for f in check(results))
