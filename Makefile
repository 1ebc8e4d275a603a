# Set-up is part of `make run` and `make test`: a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test bench package clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Qt's window needs a few X11 libraries that minimal Linux installs lack: install them (or say how) first.
run: $(STAMP)
	$(VENV)/bin/python scripts/check_system_libs.py
	$(VENV)/bin/segstudio --sample

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest

package: $(STAMP)
	PYTHON=$(VENV)/bin/python packaging/build.sh

clean-venv:
	rm -rf $(VENV)
