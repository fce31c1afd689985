# The README's two commands: `make demo` and `make test`. The rest are conveniences.
BUILD ?= build

.PHONY: all build deps test demo format format-check clean

all: build

deps:
	scripts/deps.sh

build:
	scripts/deps.sh --no-npm
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j2

test:
	scripts/test.sh

demo:
	scripts/demo.sh

format:
	scripts/format.sh

format-check:
	scripts/format.sh --check

clean:
	rm -rf build build-san
