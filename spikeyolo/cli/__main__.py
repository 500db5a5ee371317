"""`python -m spikeyolo.cli`: the same as the spikeyolo command."""
import sys

from spikeyolo.cli import main

sys.exit(main())
