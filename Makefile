# The two commands of the README, and a few more for day-to-day work.
.PHONY: deploy test lint unit bench sandbox-down status

# Set up everything (venv, collections, engine, image, sandbox hosts) and deploy the
# whole stack into the sandbox, ending with the status dashboard.
deploy:
	scripts/bootstrap.sh
	scripts/sandbox.sh up
	.venv/bin/ansible-playbook playbooks/provision.yml deploy.yml

# Linters, pytest and every molecule scenario; ends with "N passed, N failed".
test:
	scripts/test.sh

lint:
	scripts/bootstrap.sh
	.venv/bin/yamllint --strict .
	.venv/bin/ansible-lint --profile production --offline
	.venv/bin/ruff check .

unit:
	scripts/bootstrap.sh
	.venv/bin/pytest -q tests

status:
	.venv/bin/ansible-playbook playbooks/status.yml

bench:
	scripts/bench.sh

sandbox-down:
	scripts/sandbox.sh down
