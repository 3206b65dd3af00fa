"""``python -m radai`` runs the ``radai`` command."""

from radai.cli import main

main()
