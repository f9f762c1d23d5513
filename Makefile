# The two commands README shows. Each installs what it needs on a fresh machine.
.PHONY: demo test bootstrap lint

demo: bootstrap
	scripts/demo.sh

test:
	scripts/test.sh

bootstrap:
	scripts/bootstrap.sh
