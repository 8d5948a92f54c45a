"""House rule: ``analysis`` never imports dash (checked in a fresh interpreter)."""

import subprocess
import sys


def test_analysis_does_not_import_dash():
    code = "import sys, analysis, analysis.cli; assert not any(m == 'dash' or m.startswith('dash.') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_is_explicit():
    import analysis
    assert analysis.__all__ and all(hasattr(analysis, n) for n in analysis.__all__)
