from fleet import gcpolicy

gcpolicy.start()  # before the imports below: see fleet/gcpolicy.py

from fleet.cli import main  # noqa: E402

main()
