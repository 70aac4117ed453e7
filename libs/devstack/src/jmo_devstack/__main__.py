from jmo_devstack.cli import main

main()
