from fleet import gcpolicy

gcpolicy.start()  # before the CLI's imports: see fleet/gcpolicy.py

from fleet.cli import main  # noqa: E402

main()
