build/asan/resolver/wire.o: resolver/wire.c resolver/wire.h
resolver/wire.h:
