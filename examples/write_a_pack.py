"""A partner checks a pack before shipping it: load it safely, validate its app, show the plan.

    python examples/write_a_pack.py [PATH]      # default: examples/partner_pack

Then install it with `jimu pack import PATH --with-sample-data`.
"""
from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.validation import validate_app  # noqa: E402
from templates_library.loader import load_pack  # noqa: E402


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "partner_pack"
    pack = load_pack(path, now=datetime.now(UTC))
    print(f"{pack.name} {pack.version}: {pack.title}")
    errors = validate_app(pack.app)
    for e in errors:
        print(f"  {e['location']}: {e['message']}")
    for entity, rows in pack.sample_data.items():
        print(f"  sample data: {len(rows)} {entity} row(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
