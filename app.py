"""Open the analyst app: `python app.py` shows the embedded demo; `python app.py --help` lists the options."""

import sys

from tcap_viz.cli import main

if __name__ == "__main__":
    main(["app", *sys.argv[1:]])
