import sys

from hummingbird.cli import entry_point

sys.exit(entry_point())
