"""The ``hummingbird`` command line: :mod:`~hummingbird.cli.main` (the program), :mod:`~hummingbird.cli.commands`
(one function per command), :mod:`~hummingbird.cli.parser` (options, help texts, defaults; imports no torch),
:mod:`~hummingbird.cli.argtypes` (number checks while parsing) and :mod:`~hummingbird.cli.outputs` (where
``segment`` writes).
"""
