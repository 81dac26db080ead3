"""Entry point of Copier's tasks: runs the cruijff_gen package from this template checkout.

Copier runs this file from `{{ _copier_conf.src_path }}`, the exact template commit being rendered,
so the generated tree always comes from the same commit as the template (what makes the 3-way merge
of `copier update` see task-generated files consistently). An installed cruijff_gen is not used.
That checkout is a fresh clone each time: the package's compiled code is kept in the per-user
store instead, keyed by each module's source (cruijff_gen/bytecode.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cruijff_gen import bytecode  # noqa: E402

bytecode.install()

from cruijff_gen.cli import main  # noqa: E402

sys.exit(main())
