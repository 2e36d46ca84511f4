build/asan/tests/unit/test_config.o: tests/unit/test_config.c \
 resolver/config.h resolver/log.h
resolver/config.h:
resolver/log.h:
