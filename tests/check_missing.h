/* Forced into the unit tests (-include) when configure did not find Check. */
#error "make check needs the Check unit-test framework: apt-get install check (Debian/Ubuntu), then re-run configure"
