import sys

from hummingbird.cli.main import entry_point

sys.exit(entry_point())
