# The two commands README shows. Each installs what it needs on a fresh machine.
.PHONY: demo test bootstrap lint

# demo.sh bootstraps first; DEMO_ARGS="--exit" (or FLEET_DEMO_EXIT=1) ends with the summary instead of serving.
demo:
	scripts/demo.sh $(DEMO_ARGS)

test:
	scripts/test.sh

bootstrap:
	scripts/bootstrap.sh
