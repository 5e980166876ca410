"""Prints how many generated cases the reliability suite ran."""


def pytest_terminal_summary(terminalreporter):
    ran = [
        r
        for key in ("passed", "failed")
        for r in terminalreporter.stats.get(key, [])
        if "reliability" in r.nodeid and r.when == "call"
    ]
    if ran:
        terminalreporter.write_line(f"reliability: {len(ran)} cases run")
