from aitrack.entry import main

if __name__ == "__main__":  # a spawned worker may import this module: never run it then
    main()
