"""`python -m spikeyolo.cli`: the same as the spikeyolo command."""
import sys

from spikeyolo.entry import main

sys.exit(main())
